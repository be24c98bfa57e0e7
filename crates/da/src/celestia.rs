//! The `celestia` backend (cargo feature `celestia`): each batch is one blob in the
//! node's Celestia namespace, paid for with a PayForBlobs transaction through a
//! Celestia node's gRPC endpoint and read back through its JSON-RPC (`blob.Get`), both
//! with the `celestia-client` crate. It cannot run on a machine without a Celestia
//! network (a light node and a consensus gRPC endpoint), so it is compiled in CI and
//! its index unit-tested, not run end to end (`docs/SHARED.md`).
//!
//! **Index.** Batch `n` (from 1) is the `n`-th line of `index.jsonl` in the backend's
//! directory: the Celestia height that included it, its blob commitment, keccak256 of
//! the batch and its size, appended and synced once the PayForBlobs transaction is
//! included. Readers use the index, so batches are numbered without gap or duplicate.
//! A crash after the inclusion and before the index line leaves one extra copy on
//! Celestia that the index never names: the poster posts that batch again.
//!
//! The client is asynchronous: calls run on a runtime of this backend's own (two
//! threads) and the caller's thread waits for the answer, so the trait's blocking calls
//! work from any thread, inside another runtime or not.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use alloy_primitives::{keccak256, B256};
use celestia_client::tx::TxConfig;
use celestia_client::types::nmt::Namespace;
use celestia_client::types::{Blob, Commitment};
use celestia_client::Client;
use serde::{Deserialize, Serialize};

use crate::{DaBackend, DaError, DaRef};

/// Largest batch posted (Celestia's blob size limit is about 2 MiB per transaction on
/// mainnet; kept below it).
pub const MAX_CELESTIA_BATCH: usize = 1_900 * 1024;
/// Longest wait for one call (a PayForBlobs waits for its inclusion).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The Celestia node and the poster's account.
#[derive(Debug, Clone)]
pub struct CelestiaConfig {
    /// A Celestia node's JSON-RPC (`ws://` or `http://`, port 26658 by default).
    pub rpc: String,
    /// Its auth token, if the node requires one.
    pub auth_token: Option<String>,
    /// A consensus node's gRPC endpoint (`http://…:9090`), to pay for blobs.
    pub grpc: String,
    /// The paying account's secp256k1 private key, hex.
    pub key_hex: String,
    /// The namespace's 10 user bytes (version 0).
    pub namespace: Vec<u8>,
    /// The index's directory.
    pub dir: PathBuf,
}

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CelestiaEntry {
    /// The Celestia block that included the blob.
    pub celestia_height: u64,
    /// The blob's share commitment.
    pub blob_commitment: B256,
    /// keccak256 of the batch.
    pub commitment: B256,
    pub size: u64,
}

/// See the module documentation.
pub struct CelestiaDa {
    runtime: tokio::runtime::Runtime,
    client: std::sync::Arc<Client>,
    namespace: Namespace,
    index: Mutex<Index>,
}

/// The index file and its lines.
pub struct Index {
    path: PathBuf,
    entries: Vec<CelestiaEntry>,
}

impl Index {
    /// Opens (or creates) `dir/index.jsonl`; a torn last line (a crash mid-write) is
    /// dropped.
    pub fn open(dir: &Path) -> Result<Self, DaError> {
        std::fs::create_dir_all(dir).map_err(|e| DaError::Io(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("index.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(DaError::Io(format!("reading {}: {e}", path.display()))),
        };
        let mut entries = Vec::new();
        let mut good = 0usize;
        for line in text.split_inclusive('\n') {
            match serde_json::from_str::<CelestiaEntry>(line.trim_end()) {
                Ok(e) if line.ends_with('\n') => {
                    entries.push(e);
                    good += line.len();
                }
                _ => break,
            }
        }
        if good != text.len() {
            tracing::warn!(path = %path.display(), "dropping a torn last line of the Celestia index");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| DaError::Io(format!("opening {}: {e}", path.display())))?;
            f.set_len(good as u64).and_then(|_| f.sync_all()).map_err(|e| DaError::Io(e.to_string()))?;
        }
        Ok(Self { path, entries })
    }

    /// Appends and syncs one line; returns the batch's number.
    pub fn append(&mut self, entry: CelestiaEntry) -> Result<u64, DaError> {
        let mut line = serde_json::to_string(&entry).map_err(|e| DaError::Io(e.to_string()))?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| DaError::Io(format!("opening {}: {e}", self.path.display())))?;
        f.write_all(line.as_bytes()).and_then(|_| f.sync_data()).map_err(|e| DaError::Io(e.to_string()))?;
        self.entries.push(entry);
        Ok(self.entries.len() as u64)
    }

    /// Batch `n` (from 1).
    pub fn get(&self, n: u64) -> Option<&CelestiaEntry> {
        n.checked_sub(1).and_then(|i| self.entries.get(i as usize))
    }

    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn rpc_err(what: &str, e: impl std::fmt::Display) -> DaError {
    DaError::Io(format!("celestia {what}: {e}"))
}

impl CelestiaDa {
    /// Connects to the Celestia node (checking both endpoints and the key) and opens the
    /// index in `config.dir`.
    pub fn open(config: CelestiaConfig) -> Result<Self, DaError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("celestia")
            .enable_all()
            .build()
            .map_err(|e| rpc_err("runtime", e))?;
        let namespace = Namespace::new_v0(&config.namespace).map_err(|e| rpc_err("namespace", e))?;
        let index = Index::open(&config.dir)?;
        let mut builder = Client::builder().rpc_url(&config.rpc).grpc_url(config.grpc.as_str());
        if let Some(token) = &config.auth_token {
            builder = builder.rpc_auth_token(token);
        }
        builder = builder.private_key_hex(config.key_hex.trim().trim_start_matches("0x"));
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(tokio::time::timeout(CALL_TIMEOUT, builder.build()).await);
        });
        let client = rx
            .recv()
            .map_err(|_| rpc_err("connecting", "the call was dropped"))?
            .map_err(|_| rpc_err("connecting", "timed out"))?
            .map_err(|e| rpc_err("connecting", e))?;
        Ok(Self { runtime, client: std::sync::Arc::new(client), namespace, index: Mutex::new(index) })
    }

    /// Runs `f` on this backend's runtime and waits for it, from any thread.
    fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl std::future::Future<Output = Result<T, DaError>> + Send + 'static,
    ) -> Result<T, DaError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let out = match tokio::time::timeout(CALL_TIMEOUT, f).await {
                Ok(r) => r,
                Err(_) => Err(rpc_err(what, "timed out")),
            };
            let _ = tx.send(out);
        });
        rx.recv().map_err(|_| rpc_err(what, "the call was dropped"))?
    }
}

impl DaBackend for CelestiaDa {
    fn name(&self) -> &'static str {
        "celestia"
    }

    fn post(&self, batch: &[u8]) -> Result<DaRef, DaError> {
        if batch.len() > MAX_CELESTIA_BATCH {
            return Err(DaError::TooLarge { size: batch.len(), limit: MAX_CELESTIA_BATCH });
        }
        let signer = self.client.address().map_err(|e| rpc_err("signer address", e))?;
        let blob = Blob::new(self.namespace, batch.to_vec(), Some(signer)).map_err(|e| rpc_err("blob", e))?;
        let blob_commitment = B256::from(*blob.commitment.hash());
        let client = self.client.clone();
        let info = self.call("submitting a blob", async move {
            client.blob().submit(&[blob], TxConfig::default()).await.map_err(|e| rpc_err("submitting a blob", e))
        })?;
        let entry = CelestiaEntry {
            celestia_height: info.height,
            blob_commitment,
            commitment: keccak256(batch),
            size: batch.len() as u64,
        };
        let height = self.index.lock().map_err(|_| DaError::Io("index lock poisoned".into()))?.append(entry.clone())?;
        tracing::info!(height, celestia_height = info.height, size = batch.len(), "batch posted to Celestia");
        Ok(DaRef { backend: "celestia".into(), height, commitment: entry.commitment, size: entry.size })
    }

    fn fetch(&self, height: u64) -> Result<Option<Vec<u8>>, DaError> {
        let Some(entry) =
            self.index.lock().map_err(|_| DaError::Io("index lock poisoned".into()))?.get(height).cloned()
        else {
            return Ok(None);
        };
        let client = self.client.clone();
        let namespace = self.namespace;
        let commitment = Commitment::new(entry.blob_commitment.0);
        let blob = self.call("reading a blob", async move {
            client
                .blob()
                .get(entry.celestia_height, namespace, commitment)
                .await
                .map_err(|e| rpc_err("reading a blob", e))
        })?;
        if keccak256(&blob.data) != entry.commitment {
            return Err(rpc_err("reading a blob", format!("batch {height} does not hash to its commitment")));
        }
        Ok(Some(blob.data))
    }

    fn latest(&self) -> Result<Option<DaRef>, DaError> {
        let index = self.index.lock().map_err(|_| DaError::Io("index lock poisoned".into()))?;
        Ok(index.entries.last().map(|e| DaRef {
            backend: "celestia".into(),
            height: index.len(),
            commitment: e.commitment,
            size: e.size,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> CelestiaEntry {
        CelestiaEntry {
            celestia_height: u64::from(n) * 10,
            blob_commitment: B256::repeat_byte(n),
            commitment: keccak256([n]),
            size: u64::from(n),
        }
    }

    #[test]
    fn the_index_numbers_batches_from_one_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = Index::open(dir.path()).expect("open");
        assert!(index.is_empty());
        assert_eq!(index.append(entry(1)).expect("append"), 1);
        assert_eq!(index.append(entry(2)).expect("append"), 2);
        // A crash mid-write leaves half a line.
        let path = dir.path().join("index.jsonl");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"celestiaHeight\":3").expect("write");
        drop(f);
        let mut index = Index::open(dir.path()).expect("reopen");
        assert_eq!(index.len(), 2);
        assert_eq!(index.get(1), Some(&entry(1)));
        assert_eq!(index.get(2), Some(&entry(2)));
        assert_eq!(index.get(0), None);
        assert_eq!(index.get(3), None);
        assert_eq!(index.append(entry(3)).expect("append"), 3, "no gap after the torn line");
        let index = Index::open(dir.path()).expect("reopen");
        assert_eq!(index.get(3), Some(&entry(3)));
    }

    #[test]
    fn a_batch_becomes_a_version_zero_blob_of_the_namespace() {
        let ns = Namespace::new_v0(b"cairn31337").expect("namespace");
        let blob = Blob::new(ns, vec![7; 1000], None).expect("blob");
        assert_eq!(blob.namespace, ns);
        assert_eq!(blob.data.len(), 1000);
        let again = Blob::new(ns, vec![7; 1000], None).expect("blob");
        assert_eq!(blob.commitment, again.commitment, "the commitment is the data's");
        let other = Blob::new(ns, vec![8; 1000], None).expect("blob");
        assert_ne!(blob.commitment, other.commitment);
    }
}
