//! JSON-RPC of a shared set's node (lazy: it orders many rollups and executes none, so
//! it has no state to serve). Standard methods where they mean the same thing
//! (`eth_sendRawTransaction`, `eth_chainId` is the set's own id, `net_version`,
//! `web3_clientVersion`); the rest is `cairn_*` (`docs/RPC.md`, `docs/SHARED.md`).

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Bytes, B256};
use cairn_sequencer::{BundleOutcome, ExecutedPart, Lazy, LazyStatus, SharedEvent};
use cairn_storage::order::DecidedBlock;
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::error::RpcError;
use crate::params::Args;

use crate::{DEFAULT_PRECONF_WAIT, MAX_PRECONF_WAIT};

/// The RPC of a shared node: the node, and the client version it reports.
#[derive(Clone)]
pub struct SharedApi {
    pub lazy: Arc<Lazy>,
    /// The set's genesis (validators, rollups, accounts), served by `cairn_getGenesis`.
    pub genesis: Value,
}

fn hex(n: u64) -> String {
    format!("{n:#x}")
}

/// A decided block as `cairn_getSequencerBlock` and the `decided` stream give it: the
/// whole sequencer block (every transaction's hash and namespace), its certificate, and
/// the raw transactions of `namespace` (all of them without one).
pub fn decided_json(d: &DecidedBlock, namespace: Option<u64>) -> Value {
    let namespaces = d.block.namespaces.clone().unwrap_or_default();
    let txs: Vec<&Bytes> = d
        .txs
        .iter()
        .zip(namespaces.iter().map(Some).chain(std::iter::repeat(None)))
        .filter(|(_, ns)| namespace.is_none() || ns.copied() == namespace)
        .map(|(raw, _)| raw)
        .collect();
    json!({
        "height": hex(d.block.height),
        "hash": d.block.hash(),
        "block": d.block,
        "certificate": d.certificate,
        "namespace": namespace.map(hex),
        "transactions": txs,
    })
}

fn status_json(hash: &B256, s: &LazyStatus) -> Value {
    match s {
        LazyStatus::Received { namespace, at_ms } => {
            json!({"transactionHash": hash, "status": "received", "namespace": hex(*namespace), "receivedAt": at_ms})
        }
        LazyStatus::Preconfirmed { height, position, fragment } => json!({
            "transactionHash": hash,
            "status": "preconfirmed",
            "height": hex(*height),
            "position": hex(*position),
            "fragment": fragment,
        }),
        LazyStatus::Decided { height, position, da } => json!({
            "transactionHash": hash,
            "status": if da.is_some() { "firm" } else { "sequenced" },
            "height": hex(*height),
            "position": hex(*position),
            "da": da,
        }),
    }
}

/// `cairn_sendBundle`'s parameter.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleParam {
    txs: Vec<Bytes>,
}

/// A part of an executed bundle: its place and receipt (the fields of
/// `eth_getTransactionReceipt` that do not depend on the rollup's block hash).
fn part_json(p: &ExecutedPart) -> Value {
    let r = &p.receipt;
    let first_log = r.first_log_index;
    json!({
        "hash": p.hash,
        "namespace": hex(p.namespace),
        "position": hex(p.position),
        "receipt": {
            "transactionHash": p.hash,
            "status": if r.success { "0x1" } else { "0x0" },
            "type": hex(u64::from(r.tx_type)),
            "from": r.from,
            "gasUsed": hex(r.gas_used),
            "cumulativeGasUsed": hex(r.cumulative_gas_used),
            "effectiveGasPrice": format!("{:#x}", r.effective_gas_price),
            "contractAddress": r.created(),
            "logs": r.logs.iter().enumerate().map(|(i, l)| json!({
                "address": l.address,
                "topics": l.topics(),
                "data": l.data.data,
                "logIndex": hex(first_log + i as u64),
            })).collect::<Vec<_>>(),
        },
    })
}

impl SharedApi {
    /// Queues a revert-protected bundle (this node executes all its rollups) and waits
    /// (at most `wait`, which is also the bundle's deadline) for its outcome: the signed
    /// fragment holding it with every part's receipt, or why it was dropped.
    async fn send_protected(&self, txs: Vec<Bytes>, wait: Duration) -> Result<Value, RpcError> {
        let mut events = self.lazy.subscribe();
        let lazy = self.lazy.clone();
        let deadline_ms = cairn_sequencer::now_ms() + wait.as_millis() as u64;
        let bundle = tokio::task::spawn_blocking(move || lazy.submit_protected(&txs, deadline_ms))
            .await
            .map_err(|e| RpcError::Internal(e.to_string()))?
            .map_err(|e| RpcError::Server(e.to_string()))?;
        // The node drops the bundle at its deadline when it builds or decides a block;
        // a little longer here, so that the answer is that outcome.
        let deadline = tokio::time::Instant::now() + wait + Duration::from_secs(2);
        loop {
            match self.lazy.bundle_outcome(&bundle) {
                Some(BundleOutcome::Executed { height, fragment, parts }) => {
                    return Ok(json!({
                        "bundleHash": bundle,
                        "status": "preconfirmed",
                        "executed": true,
                        "height": hex(height),
                        "transactions": parts.iter().map(part_json).collect::<Vec<_>>(),
                        "fragment": fragment,
                    }))
                }
                Some(BundleOutcome::Dropped(reason)) => {
                    return Err(RpcError::Server(format!("bundle {bundle} dropped: {reason}")))
                }
                None => {}
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => {
                    return Err(RpcError::Timeout {
                        message: format!("bundle {bundle} was admitted but not executed within {wait:?}"),
                        hash: bundle,
                    })
                }
                Ok(Err(RecvError::Closed)) => return Err(RpcError::Internal("the node is stopping".into())),
                Ok(_) => {}
            }
        }
    }

    /// Queues a bundle and waits (at most `wait`) until one signed fragment holds all of
    /// it: that fragment is the bundle's preconfirmation.
    async fn send_bundle(&self, txs: Vec<Bytes>, wait: Duration) -> Result<Value, RpcError> {
        let hashes: Vec<B256> = txs.iter().map(alloy_primitives::keccak256).collect();
        let mut events = self.lazy.subscribe();
        let lazy = self.lazy.clone();
        let bundle = tokio::task::spawn_blocking(move || lazy.submit_bundle(&txs, true))
            .await
            .map_err(|e| RpcError::Internal(e.to_string()))?
            .map_err(|e| RpcError::Server(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let statuses: Vec<Option<LazyStatus>> = hashes.iter().map(|h| self.status(h)).collect::<Result<_, _>>()?;
            let places: Option<Vec<(u64, u64)>> = statuses
                .iter()
                .map(|s| match s {
                    Some(
                        LazyStatus::Preconfirmed { height, position, .. }
                        | LazyStatus::Decided { height, position, .. },
                    ) => Some((*height, *position)),
                    _ => None,
                })
                .collect();
            if let Some(places) = places {
                let fragment = statuses.iter().find_map(|s| match s {
                    Some(LazyStatus::Preconfirmed { fragment, .. }) => Some(fragment.clone()),
                    _ => None,
                });
                let status = if fragment.is_some() { "preconfirmed" } else { "sequenced" };
                return Ok(json!({
                    "bundleHash": bundle,
                    "status": status,
                    "height": hex(places[0].0),
                    "transactions": hashes.iter().zip(&places).map(|(h, (_, p))| json!({"hash": h, "position": hex(*p)})).collect::<Vec<_>>(),
                    "fragment": fragment,
                }));
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => {
                    return Err(RpcError::Timeout {
                        message: format!("bundle {bundle} was admitted but not preconfirmed within {wait:?}"),
                        hash: bundle,
                    })
                }
                Ok(Err(RecvError::Closed)) => return Err(RpcError::Internal("the node is stopping".into())),
                Ok(_) => {}
            }
        }
    }

    async fn submit(&self, raw: Bytes, relay: bool) -> Result<B256, RpcError> {
        let lazy = self.lazy.clone();
        tokio::task::spawn_blocking(move || lazy.submit(&raw, relay))
            .await
            .map_err(|e| RpcError::Internal(e.to_string()))?
            .map_err(|e| RpcError::Server(e.to_string()))
    }

    fn status(&self, hash: &B256) -> Result<Option<LazyStatus>, RpcError> {
        self.lazy.status(hash).map_err(|e| RpcError::Internal(e.to_string()))
    }

    /// Submits `raw` and waits (at most `wait`) until a signed fragment holds it.
    async fn send_preconfirmed(&self, raw: Bytes, wait: Duration) -> Result<Value, RpcError> {
        let mut events = self.lazy.subscribe();
        let hash = self.submit(raw, true).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(s @ (LazyStatus::Preconfirmed { .. } | LazyStatus::Decided { .. })) = self.status(&hash)? {
                return Ok(status_json(&hash, &s));
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => {
                    return Err(RpcError::Timeout {
                        message: format!("transaction {hash} was admitted but not preconfirmed within {wait:?}"),
                        hash,
                    })
                }
                Ok(Err(RecvError::Closed)) => return Err(RpcError::Internal("the node is stopping".into())),
                Ok(_) => {}
            }
        }
    }

    /// Registers the shared node's methods.
    pub fn into_module(self) -> Result<RpcModule<SharedApi>, jsonrpsee::core::RegisterMethodError> {
        let mut m = RpcModule::new(self);
        m.register_method("eth_chainId", |_, api, _| Ok::<_, RpcError>(hex(api.lazy.config().chain_id)))?;
        m.register_method("net_version", |_, api, _| Ok::<_, RpcError>(api.lazy.config().chain_id.to_string()))?;
        m.register_method("web3_clientVersion", |_, _, _| {
            Ok::<_, RpcError>(format!("cairn/v{}/shared", env!("CARGO_PKG_VERSION")))
        })?;
        m.register_async_method("eth_sendRawTransaction", |p, api, _| async move {
            let raw: Bytes = Args::new(&p).next("raw transaction")?;
            api.submit(raw, true).await
        })?;
        m.register_async_method("cairn_relayRawTransaction", |p, api, _| async move {
            let raw: Bytes = Args::new(&p).next("raw transaction")?;
            let lazy = api.lazy.clone();
            tokio::task::spawn_blocking(move || lazy.submit_relayed(&raw))
                .await
                .map_err(|e| RpcError::Internal(e.to_string()))?
                .map_err(|e| RpcError::Server(e.to_string()))
        })?;
        m.register_async_method("cairn_sendBundle", |p, api, _| async move {
            let mut args = Args::new(&p);
            let bundle: BundleParam = args.next("bundle")?;
            let wait: Option<u64> = args.opt("timeout in milliseconds")?;
            let wait = wait.map_or(DEFAULT_PRECONF_WAIT, Duration::from_millis).min(MAX_PRECONF_WAIT);
            if api.lazy.executes_all(&bundle.txs) {
                return api.send_protected(bundle.txs, wait).await;
            }
            api.send_bundle(bundle.txs, wait).await
        })?;
        m.register_async_method("cairn_sendRawTransactionPreconfirmed", |p, api, _| async move {
            let mut args = Args::new(&p);
            let raw: Bytes = args.next("raw transaction")?;
            let wait: Option<u64> = args.opt("timeout in milliseconds")?;
            let wait = wait.map_or(DEFAULT_PRECONF_WAIT, Duration::from_millis).min(MAX_PRECONF_WAIT);
            api.send_preconfirmed(raw, wait).await
        })?;
        m.register_method("cairn_getTransactionStatus", |p, api, _| {
            let hash: B256 = Args::new(&p).next("transaction hash")?;
            Ok::<_, RpcError>(api.status(&hash)?.map(|s| status_json(&hash, &s)))
        })?;
        m.register_blocking_method("cairn_getSequencerBlock", |p, api, _| {
            let mut args = Args::new(&p);
            let height: alloy_primitives::U64 = args.next("height")?;
            let namespace: Option<alloy_primitives::U64> = args.opt("namespace")?;
            let d = api.lazy.decided_block(height.to()).map_err(|e| RpcError::Internal(e.to_string()))?;
            Ok::<_, RpcError>(d.map(|d| decided_json(&d, namespace.map(|n| n.to()))))
        })?;
        m.register_blocking_method("cairn_getEvidence", |_, api, _| {
            let all = api.lazy.evidence().map_err(|e| RpcError::Internal(e.to_string()))?;
            let list: Vec<Value> = all.into_iter().map(|(id, proof, record)| record.to_json(id, &proof)).collect();
            Ok::<_, RpcError>(list)
        })?;
        m.register_blocking_method("cairn_submitEvidence", |p, api, _| {
            crate::cairn::evidence_answer(api.lazy.record_evidence(crate::cairn::evidence_param(&p)?))
        })?;
        m.register_method("cairn_daStatus", |_, api, _| {
            Ok::<_, RpcError>(api.lazy.da().map(|da| da.status.lock().clone()))
        })?;
        m.register_blocking_method("cairn_getDaBatch", |p, api, _| {
            let height: alloy_primitives::U64 = Args::new(&p).next("DA height")?;
            crate::cairn::da_batch_json(api.lazy.da().as_ref(), height.to())
        })?;
        m.register_method("cairn_getGenesis", |_, api, _| Ok::<_, RpcError>(api.genesis.clone()))?;
        m.register_method("cairn_sharedStatus", |_, api, _| {
            let lazy = &api.lazy;
            let rollups: Vec<Value> = lazy
                .config()
                .rollups
                .iter()
                .zip(lazy.pool_counts())
                .map(|(r, (_, pooled))| {
                    json!({"chainId": hex(r.chain_id), "weight": r.weight, "minFeePerGas": hex(r.min_fee_per_gas), "pooled": pooled})
                })
                .collect();
            Ok::<_, RpcError>(json!({
                "chainId": hex(lazy.config().chain_id),
                "decidedHeight": hex(lazy.decided_height()),
                "validator": lazy.address(),
                "rollups": rollups,
            }))
        })?;
        m.register_subscription(
            "cairn_subscribeDecided",
            "cairn_decided",
            "cairn_unsubscribeDecided",
            |p, pending, api, _| async move { decided_stream(p, pending, api).await },
        )?;
        Ok(m)
    }
}

/// `cairn_subscribeDecided(namespace?, fromHeight?)`: every decided block from
/// `fromHeight` on (the stored ones first, then each as it is decided), as
/// [`decided_json`] gives it. A subscriber that falls behind by more than the event
/// buffer is dropped; it resubscribes from the height it needs.
async fn decided_stream(
    p: jsonrpsee::types::Params<'static>,
    pending: jsonrpsee::PendingSubscriptionSink,
    api: Arc<SharedApi>,
) -> SubscriptionResult {
    let parsed = (|| {
        let mut args = Args::new(&p);
        let namespace: Option<alloy_primitives::U64> = args.opt("namespace")?;
        let from: Option<alloy_primitives::U64> = args.opt("from height")?;
        Ok::<_, RpcError>((namespace.map(|n| n.to::<u64>()), from.map(|f| f.to::<u64>())))
    })();
    let (namespace, from) = match parsed {
        Ok(v) => v,
        Err(e) => {
            pending.reject(ErrorObjectOwned::from(e)).await;
            return Ok(());
        }
    };
    let mut events = api.lazy.subscribe();
    let sink = pending.accept().await?;
    let send = |v: Value| {
        let msg = serde_json::value::to_raw_value(&v).map(jsonrpsee::SubscriptionMessage::from);
        async {
            match msg {
                Ok(m) => sink.send(m).await.is_ok(),
                Err(_) => false,
            }
        }
    };
    let mut next = from.unwrap_or_else(|| api.lazy.decided_height() + 1).max(1);
    // The stored blocks first (catch-up), bounded by what is decided now.
    loop {
        let d = match api.lazy.decided_block(next) {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(_) => return Ok(()),
        };
        if !send(decided_json(&d, namespace)).await {
            return Ok(());
        }
        next += 1;
    }
    loop {
        let event = tokio::select! {
            _ = sink.closed() => break,
            ev = events.recv() => ev,
        };
        match event {
            Ok(SharedEvent::Decided(d)) => {
                let h = d.block.height;
                if h < next {
                    continue;
                }
                // A block decided between the catch-up and the subscription: from the store.
                while next < h {
                    match api.lazy.decided_block(next) {
                        Ok(Some(d)) if send(decided_json(&d, namespace)).await => next += 1,
                        _ => return Ok(()),
                    }
                }
                if !send(decided_json(&d, namespace)).await {
                    break;
                }
                next = h + 1;
            }
            Ok(SharedEvent::Fragment(_) | SharedEvent::Bundle(_)) => {}
            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => break,
        }
    }
    Ok(())
}
