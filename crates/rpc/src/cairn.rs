//! Cairn's own methods: preconfirmations and transaction status.
//!
//! - `cairn_sendRawTransactionPreconfirmed(raw, timeoutMs?)`: admits a transaction like
//!   `eth_sendRawTransaction`, then answers once it is in a signed, durable fragment,
//!   with the receipt, the promised block and position, and the signed fragment.
//! - `eth_sendRawTransactionSync(raw, timeoutMs?)` (EIP-7966): the same wait, answered
//!   with the (preconfirmed) receipt only.
//! - `cairn_getTransactionReceipt(hash)`: the receipt as soon as the transaction is
//!   preconfirmed (block hash `null` until sealed); `eth_getTransactionReceipt` answers
//!   sealed receipts only.
//! - `cairn_getTransactionStatus(hash)`: the tier and its history.
//! - `cairn_sequencer()`: the address that signs fragments and the EIP-712 domain and
//!   types to check them with.

use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bytes, B256, U64};
use cairn_primitives::fragment::{domain, DOMAIN_NAME, DOMAIN_VERSION};
use cairn_sequencer::{FragmentPart, SequencerError, Tier, TxStatus};
use jsonrpsee::RpcModule;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::time::Duration;

use crate::convert::{rpc_receipt, Place};
use crate::eth::EthApi;
use crate::RpcError;

/// How long a send-and-wait method waits for the preconfirmation by default, and at most.
pub const DEFAULT_PRECONF_WAIT: Duration = Duration::from_secs(2);
pub const MAX_PRECONF_WAIT: Duration = Duration::from_secs(30);

/// A fragment as published: the signed fields, `signature`, `hash` and, for the
/// stream, the receipts of its transactions (block hash null: not sealed yet).
pub fn fragment_json(part: &FragmentPart, with_receipts: bool) -> Value {
    let mut v = serde_json::to_value(&part.signed).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("hash".into(), json!(part.hash));
        if with_receipts {
            let receipts: Vec<Value> =
                (0..part.body.len()).filter_map(|i| fragment_receipt(part, i).ok()).map(|r| json!(r)).collect();
            map.insert("receipts".into(), Value::Array(receipts));
        }
    }
    v
}

fn fragment_receipt(part: &FragmentPart, i: usize) -> Result<alloy_rpc_types_eth::TransactionReceipt, RpcError> {
    let (hash, sender, raw) = &part.body[i];
    let tx = cairn_primitives::TxEnvelope::decode_2718(&mut raw.as_ref())
        .map_err(|e| RpcError::Internal(format!("fragment transaction: {e}")))?;
    let f = part.fragment();
    let place =
        Place { number: f.height, timestamp: f.timestamp, block_hash: None, index: u64::from(f.first_tx) + i as u64 };
    Ok(rpc_receipt(*hash, &tx, *sender, &part.receipts[i], place))
}

/// The signed preconfirmation of transaction `i` of `part`. The fragment's JSON is
/// made once per fragment (all its transactions' answers share it).
pub fn preconfirmation_json(api: &EthApi, part: &FragmentPart, i: usize) -> Result<Box<RawValue>, RpcError> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Preconfirmation<'a> {
        transaction_hash: B256,
        block_number: U64,
        transaction_index: U64,
        receipt: alloy_rpc_types_eth::TransactionReceipt,
        fragment: &'a RawValue,
        sequencer: Option<alloy_primitives::Address>,
    }
    let receipt = fragment_receipt(part, i)?;
    let f = part.fragment();
    api.chain.note_receipt_height(f.height);
    let fragment =
        part.rpc_json.get_or_init(|| serde_json::value::to_raw_value(&fragment_json(part, false)).unwrap_or_default());
    let answer = Preconfirmation {
        transaction_hash: part.body[i].0,
        block_number: U64::from(f.height),
        transaction_index: U64::from(u64::from(f.first_tx) + i as u64),
        receipt,
        fragment,
        // Who signed this promise (under a validator set, the proposer of the block).
        sequencer: Some(part.signer),
    };
    serde_json::value::to_raw_value(&answer).map_err(|e| RpcError::Internal(e.to_string()))
}

pub fn status_json(hash: &B256, s: &TxStatus) -> Value {
    json!({
        "transactionHash": hash,
        "status": s.tier,
        "history": s.history,
        "blockNumber": s.block.map(U64::from),
        "transactionIndex": s.position.map(U64::from),
        "fragment": s.fragment.as_ref().map(|p| json!({
            "height": p.fragment().height,
            "index": p.fragment().index,
            "hash": p.hash,
        })),
        "reason": s.reason,
        "da": s.da,
    })
}

pub fn status_change_json(hash: &B256, tier: Tier, at: u64, place: Option<(u64, u64)>, reason: Option<&str>) -> Value {
    json!({
        "transactionHash": hash,
        "status": tier,
        "at": at,
        "blockNumber": place.map(|p| U64::from(p.0)),
        "transactionIndex": place.map(|p| U64::from(p.1)),
        "reason": reason,
    })
}

/// The raw transaction and the wait: the optional timeout (milliseconds, a number or a
/// hex string as viem sends it); missing, zero or above [`MAX_PRECONF_WAIT`] means the
/// default (EIP-7966: an invalid timeout falls back to the node's).
fn wait_param(p: &jsonrpsee::types::Params<'_>) -> Result<(Bytes, Duration), RpcError> {
    let mut args = crate::params::Args::new(p);
    let raw: Bytes = args.next("raw transaction")?;
    let given: Option<Value> = args.opt("timeout")?;
    let ms = match given {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => u64::from_str_radix(s.trim_start_matches("0x"), 16).ok(),
        _ => None,
    };
    let wait = ms.filter(|ms| *ms > 0).map(Duration::from_millis).filter(|d| *d <= MAX_PRECONF_WAIT);
    Ok((raw, wait.unwrap_or(DEFAULT_PRECONF_WAIT)))
}

impl EthApi {
    /// Admits `raw` and waits (at most `wait`) for its preconfirmation.
    pub async fn send_and_wait(
        &self,
        raw: Bytes,
        wait: Duration,
    ) -> Result<(std::sync::Arc<FragmentPart>, usize), RpcError> {
        if self.chain.sequencer_address().is_none() {
            return Err(RpcError::Server(SequencerError::PreconfOff.to_string()));
        }
        let hash = self.send_raw_transaction(raw).await?;
        self.chain.wait_preconfirmed(hash, wait).await.map_err(|e| match e {
            SequencerError::PreconfTimeout { hash, .. } => RpcError::Timeout { message: e.to_string(), hash },
            SequencerError::DecidedWithoutFragment { hash, block } => {
                RpcError::Decided { message: e.to_string(), hash, block }
            }
            e => RpcError::Server(e.to_string()),
        })
    }
}

/// `eth_sendRawTransactionSync`'s answer: the preconfirmed receipt, or, when the
/// transaction was decided in a block this node got without its fragments (value sync),
/// that block's receipt.
async fn send_sync(api: &EthApi, raw: Bytes, wait: Duration) -> Result<Value, RpcError> {
    match api.send_and_wait(raw, wait).await {
        Ok((part, i)) => {
            api.chain.note_receipt_height(part.fragment().height);
            serde_json::to_value(fragment_receipt(&part, i)?).map_err(|e| RpcError::Internal(e.to_string()))
        }
        Err(RpcError::Decided { hash, block, .. }) => {
            let chain = api.chain.clone();
            tokio::task::spawn_blocking(move || chain.wait_sealed_for(block, crate::eth::SEAL_WAIT))
                .await
                .map_err(|e| RpcError::Internal(e.to_string()))?;
            serde_json::to_value(api.receipt(hash, Duration::ZERO)?).map_err(|e| RpcError::Internal(e.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// `cairn_getDaBatch`'s answer: the batch at `height` of `da`, with its header.
pub(crate) fn da_batch_json(da: Option<&cairn_sequencer::DaHandle>, height: u64) -> Result<Value, RpcError> {
    let Some(da) = da else {
        return Err(RpcError::Server("this node posts to no data-availability layer".into()));
    };
    let Some(bytes) = da.backend.fetch(height).map_err(|e| RpcError::Server(e.to_string()))? else {
        return Ok(Value::Null);
    };
    let (header, _) = cairn_da::Batch::read_header(&bytes).map_err(|e| RpcError::Server(e.to_string()))?;
    Ok(json!({
        "backend": da.backend.name(),
        "height": alloy_primitives::U64::from(height),
        "commitment": alloy_primitives::keccak256(&bytes),
        "header": header,
        "data": Bytes::from(bytes),
    }))
}

pub fn register(m: &mut RpcModule<EthApi>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("cairn_relayRawTransaction", |p, api, _| async move {
        let raw: Bytes = crate::params::Args::new(&p).next("raw transaction")?;
        api.relayed_raw_transaction(raw).await
    })?;
    m.register_async_method("cairn_sendRawTransactionPreconfirmed", |p, api, _| async move {
        let (raw, wait) = wait_param(&p)?;
        let (part, i) = api.send_and_wait(raw, wait).await?;
        preconfirmation_json(&api, &part, i)
    })?;
    m.register_async_method("eth_sendRawTransactionSync", |p, api, _| async move {
        let (raw, wait) = wait_param(&p)?;
        send_sync(&api, raw, wait).await
    })?;
    m.register_method("cairn_getTransactionReceipt", |p, api, _| {
        api.preconfirmed_receipt(crate::params::Args::new(&p).next("transaction hash")?)
    })?;
    m.register_method("cairn_getTransactionStatus", |p, api, _| {
        let hash: B256 = crate::params::Args::new(&p).next("transaction hash")?;
        let status = api.chain.status(&hash).map_err(|e| RpcError::Internal(e.to_string()))?;
        Ok::<_, RpcError>(status.map(|s| status_json(&hash, &s)))
    })?;
    // A rollup follower passes bundles through to the sequencer set it follows
    // (`docs/SHARED.md`); other nodes have no bundles.
    m.register_async_method("cairn_sendBundle", |p, api, _| async move {
        if !api.ingress().forwards() {
            return Err(RpcError::Coded {
                code: -32601,
                message: "cairn_sendBundle is served by a shared set's validators and its rollups' followers".into(),
            });
        }
        let params: Value = p.parse().map_err(|e| RpcError::InvalidParams(e.to_string()))?;
        api.ingress().forward_call("cairn_sendBundle", params).await.map_err(|e| RpcError::Server(e.to_string()))
    })?;
    m.register_blocking_method("cairn_submitEvidence", |p, api, _| {
        evidence_answer(api.chain.record_evidence(evidence_param(&p)?))
    })?;
    m.register_method("cairn_daStatus", |_, api, _| {
        Ok::<_, RpcError>(api.chain.da().map(|da| da.status.lock().clone()))
    })?;
    m.register_method("cairn_getRetractions", |_, api, _| {
        let list: Vec<Value> = api
            .chain
            .retractions()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "block": format!("{:#x}", r.block),
                    "through": format!("{:#x}", r.through),
                    "da": r.da,
                    "reason": r.reason,
                    "transactions": r.txs.iter().map(|(h, _, _)| h).collect::<Vec<_>>(),
                    "at": r.at_ms,
                })
            })
            .collect();
        Ok::<_, RpcError>(list)
    })?;
    m.register_blocking_method("cairn_getDaBatch", |p, api, _| {
        let height: alloy_primitives::U64 = crate::params::Args::new(&p).next("DA height")?;
        da_batch_json(api.chain.da().as_ref(), height.to())
    })?;
    m.register_blocking_method("cairn_getEvidence", |_, api, _| {
        let all = api.chain.evidence().map_err(|e| RpcError::Internal(e.to_string()))?;
        let list: Vec<Value> = all.into_iter().map(|(id, proof, record)| record.to_json(id, &proof)).collect();
        Ok::<_, RpcError>(list)
    })?;
    m.register_blocking_method("cairn_getSequencerBlock", |p, api, _| {
        let id: alloy_eips::BlockNumberOrTag = crate::params::Args::new(&p).next("block number")?;
        let reader = api.chain.store.reader()?;
        let number = match id {
            alloy_eips::BlockNumberOrTag::Number(n) => n,
            alloy_eips::BlockNumberOrTag::Earliest => 0,
            _ => reader.head()?,
        };
        let Some((block, certificate)) = reader.sequencer_block(number)? else { return Ok(Value::Null) };
        let certificate = match cairn_consensus::Certificate::decode(&certificate) {
            Ok(cairn_consensus::Certificate::Solo { sequencer }) => json!({"kind": "solo", "sequencer": sequencer}),
            Ok(cairn_consensus::Certificate::Commit(c)) => json!({
                "kind": "commit",
                "height": format!("{:#x}", c.height),
                "round": c.round,
                "block": B256::from(c.block),
                "signatures": c.signatures.iter().map(|(a, s)| json!({
                    "validator": Address::from(*a),
                    "signature": Bytes::copy_from_slice(&s.0),
                })).collect::<Vec<_>>(),
            }),
            Err(e) => return Err(RpcError::Internal(format!("stored certificate: {e}"))),
        };
        let mut out = serde_json::to_value(&block).map_err(|e| RpcError::Internal(e.to_string()))?;
        out["hash"] = json!(block.hash());
        out["certificate"] = certificate;
        Ok::<_, RpcError>(out)
    })?;
    m.register_method("cairn_sequencer", |_, api, _| {
        let chain_id = api.chain.config.chain_id;
        let d = domain(chain_id);
        Ok::<_, RpcError>(json!({
            "address": api.chain.sequencer_address(),
            "domain": { "name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id },
            "domainSeparator": d.separator(),
            "primaryType": "Fragment",
            "types": { "Fragment": [
                { "name": "height", "type": "uint64" },
                { "name": "index", "type": "uint32" },
                { "name": "parent", "type": "bytes32" },
                { "name": "timestamp", "type": "uint64" },
                { "name": "baseFee", "type": "uint64" },
                { "name": "firstTx", "type": "uint32" },
                { "name": "transactions", "type": "bytes32[]" },
                { "name": "gasUsed", "type": "uint64" },
                { "name": "receiptsHash", "type": "bytes32" },
                { "name": "stateDiffHash", "type": "bytes32" },
            ]},
        }))
    })?;
    Ok(())
}

/// `cairn_submitEvidence`'s parameters: one evidence object, or two signed fragments.
pub(crate) fn evidence_param(p: &jsonrpsee::types::Params<'_>) -> Result<cairn_sequencer::Evidence, RpcError> {
    let params: Vec<Value> = p.parse().map_err(|e| RpcError::InvalidParams(e.to_string()))?;
    match params.as_slice() {
        [one] => cairn_sequencer::Evidence::from_json(one).map_err(RpcError::InvalidParams),
        [a, b] => {
            let parse = |v: &Value, what: &str| {
                serde_json::from_value::<cairn_primitives::SignedFragment>(v.clone())
                    .map_err(|e| RpcError::InvalidParams(format!("invalid {what}: {e}")))
            };
            let pair = [parse(a, "first signed fragment")?, parse(b, "second signed fragment")?];
            Ok(cairn_sequencer::Evidence::Fragments(Box::new(pair)))
        }
        _ => Err(RpcError::InvalidParams("expected one evidence object, or two signed fragments".into())),
    }
}

/// `cairn_submitEvidence`'s answer: what the evidence proves, and its id.
pub(crate) fn evidence_answer(
    recorded: Result<(B256, cairn_sequencer::Proven, bool), SequencerError>,
) -> Result<Value, RpcError> {
    let (id, proof, _) = recorded.map_err(|e| match e {
        SequencerError::Invalid(m) => RpcError::InvalidParams(m),
        e => RpcError::Server(e.to_string()),
    })?;
    let mut out = serde_json::to_value(&proof).map_err(|e| RpcError::Internal(e.to_string()))?;
    out["id"] = json!(id);
    Ok(out)
}
