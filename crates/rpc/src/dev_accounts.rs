//! `cairn dev`'s unlocked development accounts (the methods that use them are in `dev`).

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;

use crate::RpcError;

/// The unlocked development accounts of `cairn dev`.
#[derive(Debug, Clone, Default)]
pub struct DevMode {
    pub accounts: Vec<PrivateKeySigner>,
}

impl DevMode {
    pub fn addresses(&self) -> Vec<Address> {
        self.accounts.iter().map(|s| s.address()).collect()
    }

    pub(crate) fn signer(&self, address: Address) -> Result<&PrivateKeySigner, RpcError> {
        self.accounts
            .iter()
            .find(|s| s.address() == address)
            .ok_or_else(|| RpcError::Server(format!("unknown account {address}")))
    }
}
