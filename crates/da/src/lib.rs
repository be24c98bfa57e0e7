//! Data availability: decided sequencer blocks go to a DA layer in batches, and a rollup
//! reads its part back from there to confirm what it executed (`firm`).
//!
//! - [`codec`]: the batch format (versioned, compressed, a commitment per namespace).
//! - [`merkle`]: the per-namespace commitments and their inclusion proofs.
//! - [`DaBackend`]: where batches go. [`LocalDa`] is the embedded default, a
//!   file-backed store the node serves over its RPC; [`EthereumDa`] posts to an L1 as
//!   blob (or calldata) transactions.
//!
//! Nothing here depends on the sequencer or on consensus: a batch carries certificates
//! as opaque bytes, and backends move bytes.

#[cfg(feature = "celestia")]
pub mod celestia;
pub mod codec;
pub mod ethereum;
mod local;
pub mod merkle;

#[cfg(feature = "celestia")]
pub use celestia::{CelestiaConfig, CelestiaDa};
pub use codec::{verify_inclusion, Batch, BatchBlock, BatchHeader, NamespaceCommitment, NamespaceTxs};
pub use ethereum::{EthereumConfig, EthereumDa, PostMode};
pub use local::LocalDa;

use alloy_primitives::B256;

/// Why a batch cannot be written, read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaError {
    #[error("malformed batch: {0}")]
    Malformed(String),
    #[error("batch format version {found} is not supported (this node reads version {supported})")]
    Version { found: u8, supported: u8 },
    #[error("batch of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("DA store: {0}")]
    Io(String),
}

/// Where a batch is on its DA layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaRef {
    /// The backend's name (`local`, `ethereum`, `celestia`).
    pub backend: String,
    /// The batch's position on that layer (for `local`, its sequence number from 1).
    pub height: u64,
    /// keccak256 of the batch's bytes.
    pub commitment: B256,
    pub size: u64,
}

/// A DA layer batches are posted to and read back from. Calls block (I/O); run them off
/// the ordering path.
pub trait DaBackend: Send + Sync {
    fn name(&self) -> &'static str;
    /// Posts one batch; returns where it is once the layer holds it.
    fn post(&self, batch: &[u8]) -> Result<DaRef, DaError>;
    /// The batch at `height`, if the layer has one there.
    fn fetch(&self, height: u64) -> Result<Option<Vec<u8>>, DaError>;
    /// The newest batch posted.
    fn latest(&self) -> Result<Option<DaRef>, DaError>;
}
