use alloy_primitives::Bytes;
use jsonrpsee::types::ErrorObjectOwned;

/// Errors as JSON-RPC reports them (codes as geth uses them).
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// -32602
    #[error("{0}")]
    InvalidParams(String),
    /// -32000: the generic server error geth uses for rejected transactions and the like.
    #[error("{0}")]
    Server(String),
    /// 3: execution reverted, with the revert data.
    #[error("execution reverted{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Reverted { reason: Option<String>, data: Bytes },
    /// -32603
    #[error("internal error: {0}")]
    Internal(String),
    /// -32005: a query exceeded a bound (range, result count).
    #[error("{0}")]
    LimitExceeded(String),
    /// A specific code a method's specification gives (e.g. `eth_simulateV1`'s -380xx).
    #[error("{message}")]
    Coded { code: i32, message: String },
    /// 4 (EIP-7966): the transaction was admitted but not preconfirmed in time; the
    /// data is its hash.
    #[error("{message}")]
    Timeout { message: String, hash: alloy_primitives::B256 },
    /// -32000: no preconfirmation can be given because the transaction is decided in
    /// `block` already, which this node got without its fragments; the data is its hash.
    #[error("{message}")]
    Decided { message: String, hash: alloy_primitives::B256, block: u64 },
}

impl RpcError {
    pub fn code(&self) -> i32 {
        match self {
            Self::InvalidParams(_) => -32602,
            Self::Server(_) | Self::Decided { .. } => -32000,
            Self::Reverted { .. } => 3,
            Self::Internal(_) => -32603,
            Self::LimitExceeded(_) => -32005,
            Self::Timeout { .. } => 4,
            Self::Coded { code, .. } => *code,
        }
    }

    /// A revert with its data; the reason is decoded from `Error(string)` when present.
    pub fn reverted(data: Bytes) -> Self {
        let reason = alloy_sol_types::decode_revert_reason(&data);
        let reason = reason.map(|r| r.trim_start_matches("revert: ").to_string());
        Self::Reverted { reason, data }
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(e: RpcError) -> Self {
        let code = e.code();
        let message = e.to_string();
        match e {
            RpcError::Reverted { data, .. } => ErrorObjectOwned::owned(code, message, Some(data.to_string())),
            RpcError::Timeout { hash, .. } | RpcError::Decided { hash, .. } => {
                ErrorObjectOwned::owned(code, message, Some(hash))
            }
            _ => ErrorObjectOwned::owned(code, message, None::<()>),
        }
    }
}

impl From<cairn_storage::StoreError> for RpcError {
    fn from(e: cairn_storage::StoreError) -> Self {
        use cairn_storage::StoreError::{Pruned, TooFarBack};
        match e {
            // The caller asked for state this node does not keep: a request error.
            Pruned { .. } | TooFarBack { .. } => Self::Server(e.to_string()),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl From<cairn_trie::TrieError> for RpcError {
    fn from(e: cairn_trie::TrieError) -> Self {
        match e {
            cairn_trie::TrieError::Store(e) => e.into(),
            e => Self::Internal(e.to_string()),
        }
    }
}
