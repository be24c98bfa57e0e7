//! What the node knows of its data-availability layer, for RPC: the backend batches
//! are read back from, and what the poster has done.

use std::sync::Arc;

use cairn_da::{DaBackend, DaRef};
use parking_lot::Mutex;

/// What the poster has done.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaStatus {
    pub backend: String,
    /// The newest batch on the layer.
    pub latest: Option<DaRef>,
    /// The last block the layer holds.
    pub posted_through: u64,
    /// The last failure, while posting is being retried.
    pub error: Option<String>,
}

/// The node's DA layer and its poster's status.
#[derive(Clone)]
pub struct DaHandle {
    pub backend: Arc<dyn DaBackend>,
    pub status: Arc<Mutex<DaStatus>>,
}
