//! The `ethereum` backend: each batch is posted to an Ethereum L1 as an EIP-4844 blob
//! transaction (the batch's bytes in blobs, SimpleCoder encoding, at most
//! [`MAX_BLOBS`] blobs), sent to an inbox address, or as calldata when it does not fit
//! in blobs, when `mode` says so, or when the L1 refuses blob transactions. Calls block
//! (plain HTTP JSON-RPC); run them off the ordering path.
//!
//! **Index.** Batch `n` (from 1) is the `n`-th line of `index.jsonl` in the backend's
//! directory: its L1 transaction, kind, commitment (keccak256 of the batch) and size,
//! appended and synced once the transaction is mined with status 1. Before a transaction
//! is sent it is written, signed, to `pending.json` (synced): after a crash the pending
//! transaction is looked up by its hash and, if the L1 does not have it, sent again, the
//! same bytes with the same nonce. So a batch is posted once, whatever the crash: no gap,
//! no duplicate.
//!
//! **Reading back.** Calldata through `eth_getTransactionByHash`; blobs through
//! `anvil_getBlobsByTransactionHash` (Foundry's anvil keeps them; a production L1 node
//! drops blob sidecars once mined, and reading them from a beacon node's
//! `blob_sidecars` API is not built). Every batch read back must hash to its
//! commitment.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip4844, TxEip4844Variant, TxEip4844WithSidecar};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip4844::builder::{SidecarBuilder, SidecarCoder, SimpleCoder};
use alloy_primitives::{keccak256, Address, Bytes, TxKind, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{DaBackend, DaError, DaRef};

/// Most blobs in one batch transaction (Cancun's per-block maximum).
pub const MAX_BLOBS: usize = 6;
/// Largest batch posted as calldata.
pub const MAX_CALLDATA: usize = 120 * 1024;
/// Longest wait for a batch transaction to be mined.
const RECEIPT_WAIT: Duration = Duration::from_secs(60);

/// How batches go to the L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostMode {
    /// Blobs, calldata when a batch does not fit or blobs are refused.
    Blob,
    /// Calldata only.
    Calldata,
}

/// The L1 and the poster's account.
#[derive(Debug, Clone)]
pub struct EthereumConfig {
    /// The L1's JSON-RPC URL (`http://`).
    pub rpc: String,
    /// The account that pays for and signs the batch transactions.
    pub key: PrivateKeySigner,
    /// Where batch transactions are sent.
    pub inbox: Address,
    pub mode: PostMode,
    /// The index's directory.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    height: u64,
    tx: B256,
    /// `blob` or `calldata`.
    kind: PostMode,
    commitment: B256,
    size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    entry: Entry,
    raw: Bytes,
}

/// See the module documentation.
pub struct EthereumDa {
    config: EthereumConfig,
    agent: ureq::Agent,
    chain_id: u64,
    index: Mutex<Vec<Entry>>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> DaError {
    DaError::Io(format!("{what} {}: {e}", path.display()))
}

fn hex_u128(v: &Value) -> Result<u128, DaError> {
    let s = v.as_str().ok_or_else(|| DaError::Io(format!("L1: a number was expected, got {v}")))?;
    u128::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| DaError::Io(format!("L1: {s}: {e}")))
}

impl EthereumDa {
    /// Connects to the L1 (its chain id), reads the index, and settles a transaction a
    /// crash left pending.
    pub fn open(config: EthereumConfig) -> Result<Self, DaError> {
        std::fs::create_dir_all(&config.dir).map_err(|e| io("creating", &config.dir, e))?;
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(30))).build().into();
        let mut da = Self { config, agent, chain_id: 0, index: Mutex::new(Vec::new()) };
        da.chain_id = hex_u128(&da.call("eth_chainId", json!([]))?)? as u64;
        let path = da.config.dir.join("index.jsonl");
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))?;
            let mut index = Vec::new();
            for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                match serde_json::from_str::<Entry>(line) {
                    Ok(e) if e.height == i as u64 + 1 => index.push(e),
                    // A torn last line (a crash while appending): the pending record settles it.
                    _ if i + 1 == text.lines().filter(|l| !l.trim().is_empty()).count() => break,
                    _ => return Err(DaError::Io(format!("{}: line {} is not batch {}", path.display(), i + 1, i + 1))),
                }
            }
            *da.index.lock().map_err(|_| DaError::Io("index lock".into()))? = index;
        }
        da.settle_pending()?;
        Ok(da)
    }

    fn call(&self, method: &str, params: Value) -> Result<Value, DaError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut resp =
            self.agent.post(&self.config.rpc).send_json(&body).map_err(|e| DaError::Io(format!("L1 {method}: {e}")))?;
        let v: Value = resp.body_mut().read_json().map_err(|e| DaError::Io(format!("L1 {method}: {e}")))?;
        if let Some(e) = v.get("error") {
            return Err(DaError::Io(format!("L1 {method}: {e}")));
        }
        Ok(v["result"].clone())
    }

    fn pending_path(&self) -> PathBuf {
        self.config.dir.join("pending.json")
    }

    fn write_synced(path: &Path, bytes: &[u8], append: bool) -> Result<(), DaError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| io("opening", path, e))?;
        f.write_all(bytes).map_err(|e| io("writing", path, e))?;
        f.sync_all().map_err(|e| io("syncing", path, e))
    }

    /// A transaction sent before a crash: recorded if the L1 mined it, sent again (the
    /// same bytes) if it does not know it.
    fn settle_pending(&self) -> Result<(), DaError> {
        let path = self.pending_path();
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
        let Ok(pending) = serde_json::from_str::<Pending>(&text) else {
            // Torn before it was complete: it was never sent.
            let _ = std::fs::remove_file(&path);
            return Ok(());
        };
        let next = self.index.lock().map_err(|_| DaError::Io("index lock".into()))?.len() as u64 + 1;
        if pending.entry.height != next {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        if self.call("eth_getTransactionByHash", json!([pending.entry.tx]))?.is_null() {
            tracing::info!(height = next, tx = %pending.entry.tx, "sending a batch transaction again after a restart");
            if let Err(e) = self.call("eth_sendRawTransaction", json!([pending.raw])) {
                tracing::warn!("resending batch {next}: {e}");
            }
        }
        self.confirm(pending.entry)
    }

    /// Waits for `entry`'s transaction to be mined with status 1, then appends it to the
    /// index and drops the pending record.
    fn confirm(&self, entry: Entry) -> Result<(), DaError> {
        let deadline = Instant::now() + RECEIPT_WAIT;
        loop {
            let r = self.call("eth_getTransactionReceipt", json!([entry.tx]))?;
            if !r.is_null() {
                if r["status"] != "0x1" {
                    let _ = std::fs::remove_file(self.pending_path());
                    return Err(DaError::Io(format!("batch transaction {} failed on the L1: {r}", entry.tx)));
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(DaError::Io(format!("batch transaction {} not mined within {RECEIPT_WAIT:?}", entry.tx)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let line = serde_json::to_string(&entry).map_err(|e| DaError::Io(e.to_string()))? + "\n";
        Self::write_synced(&self.config.dir.join("index.jsonl"), line.as_bytes(), true)?;
        self.index.lock().map_err(|_| DaError::Io("index lock".into()))?.push(entry);
        let _ = std::fs::remove_file(self.pending_path());
        Ok(())
    }

    /// The fees to offer: `(max fee, tip, max blob fee)`.
    fn fees(&self) -> Result<(u128, u128, u128), DaError> {
        let price = hex_u128(&self.call("eth_gasPrice", json!([]))?)?;
        let tip = hex_u128(&self.call("eth_maxPriorityFeePerGas", json!([]))?).unwrap_or(1_000_000_000);
        let blob = self.call("eth_blobBaseFee", json!([])).and_then(|v| hex_u128(&v)).unwrap_or(1);
        Ok((price * 2 + tip, tip, blob * 2 + 1))
    }

    /// Builds and signs the transaction carrying `batch`: `(raw, hash, kind)`.
    fn sign(&self, batch: &[u8], mode: PostMode) -> Result<(Bytes, B256, PostMode), DaError> {
        let from = self.config.key.address();
        let nonce = hex_u128(&self.call("eth_getTransactionCount", json!([from, "pending"]))?)? as u64;
        let (max_fee, tip, blob_fee) = self.fees()?;
        let sign = |hash: B256| {
            self.config.key.sign_hash_sync(&hash).map_err(|e| DaError::Io(format!("signing a batch transaction: {e}")))
        };
        if mode == PostMode::Blob {
            let builder = SidecarBuilder::<SimpleCoder>::from_slice(batch);
            let needed = SimpleCoder::default()
                .required_fe(batch)
                .div_ceil(alloy_eips::eip4844::FIELD_ELEMENTS_PER_BLOB as usize);
            if needed <= MAX_BLOBS {
                let sidecar = builder.build_4844().map_err(|e| DaError::Io(format!("KZG: {e}")))?;
                let tx = TxEip4844 {
                    chain_id: self.chain_id,
                    nonce,
                    gas_limit: 21_000,
                    max_fee_per_gas: max_fee,
                    max_priority_fee_per_gas: tip,
                    to: self.config.inbox,
                    value: U256::ZERO,
                    access_list: Default::default(),
                    blob_versioned_hashes: sidecar.versioned_hashes().collect(),
                    max_fee_per_blob_gas: blob_fee,
                    input: Bytes::new(),
                };
                let signature = sign(tx.signature_hash())?;
                let hash = *tx.clone().into_signed(signature).hash();
                let variant: TxEip4844Variant = TxEip4844WithSidecar::from_tx_and_sidecar(tx, sidecar).into();
                let raw = variant.into_signed(signature).encoded_2718();
                return Ok((raw.into(), hash, PostMode::Blob));
            }
        }
        if batch.len() > MAX_CALLDATA {
            return Err(DaError::TooLarge { size: batch.len(), limit: MAX_CALLDATA });
        }
        let gas = 21_000 + 40 * batch.len() as u64 + 10_000;
        let tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(self.config.inbox),
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::copy_from_slice(batch),
        };
        let signed = tx.clone().into_signed(sign(tx.signature_hash())?);
        let hash = *signed.hash();
        let raw = alloy_consensus::TxEnvelope::Eip1559(signed).encoded_2718();
        Ok((raw.into(), hash, PostMode::Calldata))
    }

    fn entry(&self, height: u64) -> Result<Option<Entry>, DaError> {
        let index = self.index.lock().map_err(|_| DaError::Io("index lock".into()))?;
        Ok(height.checked_sub(1).and_then(|i| index.get(i as usize)).cloned())
    }
}

impl DaBackend for EthereumDa {
    fn name(&self) -> &'static str {
        "ethereum"
    }

    fn post(&self, batch: &[u8]) -> Result<DaRef, DaError> {
        let height = self.index.lock().map_err(|_| DaError::Io("index lock".into()))?.len() as u64 + 1;
        let commitment = keccak256(batch);
        let mut mode = self.config.mode;
        loop {
            let (raw, tx, kind) = self.sign(batch, mode)?;
            let entry = Entry { height, tx, kind, commitment, size: batch.len() as u64 };
            let pending = serde_json::to_vec(&Pending { entry: entry.clone(), raw: raw.clone() })
                .map_err(|e| DaError::Io(e.to_string()))?;
            Self::write_synced(&self.pending_path(), &pending, false)?;
            match self.call("eth_sendRawTransaction", json!([raw])) {
                Ok(_) => {
                    self.confirm(entry)?;
                    return Ok(DaRef { backend: "ethereum".into(), height, commitment, size: batch.len() as u64 });
                }
                Err(e) if kind == PostMode::Blob => {
                    // An L1 that takes no blob transactions: calldata instead.
                    let _ = std::fs::remove_file(self.pending_path());
                    tracing::warn!("the L1 refused a blob transaction ({e}); posting as calldata");
                    mode = PostMode::Calldata;
                }
                Err(e) => {
                    let _ = std::fs::remove_file(self.pending_path());
                    return Err(e);
                }
            }
        }
    }

    fn fetch(&self, height: u64) -> Result<Option<Vec<u8>>, DaError> {
        let Some(entry) = self.entry(height)? else { return Ok(None) };
        let bytes = match entry.kind {
            PostMode::Calldata => {
                let tx = self.call("eth_getTransactionByHash", json!([entry.tx]))?;
                let input: Bytes = serde_json::from_value(tx["input"].clone())
                    .map_err(|e| DaError::Io(format!("L1 transaction {}: {e}", entry.tx)))?;
                input.to_vec()
            }
            PostMode::Blob => {
                let blobs = self.call("anvil_getBlobsByTransactionHash", json!([entry.tx]))?;
                let blobs: Vec<alloy_eips::eip4844::Blob> = serde_json::from_value(blobs)
                    .map_err(|e| DaError::Io(format!("the L1 does not serve the blobs of {}: {e}", entry.tx)))?;
                SimpleCoder::default()
                    .decode_all(&blobs)
                    .ok_or_else(|| DaError::Malformed(format!("blobs of {} do not decode", entry.tx)))?
                    .concat()
            }
        };
        if keccak256(&bytes) != entry.commitment {
            return Err(DaError::Malformed(format!("batch {height} read back from the L1 is not the one posted")));
        }
        Ok(Some(bytes))
    }

    fn latest(&self) -> Result<Option<DaRef>, DaError> {
        let index = self.index.lock().map_err(|_| DaError::Io("index lock".into()))?;
        Ok(index.last().map(|e| DaRef {
            backend: "ethereum".into(),
            height: e.height,
            commitment: e.commitment,
            size: e.size,
        }))
    }
}
