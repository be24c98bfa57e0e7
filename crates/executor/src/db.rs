use alloy_primitives::{Address, B256, U256};
use cairn_primitives::{StateError, StateView, KECCAK_EMPTY};
use revm::bytecode::Bytecode;
use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::state::AccountInfo;

/// Adapts a [`StateView`] to revm's read-only database interface.
pub struct ViewDb<'a>(pub &'a dyn StateView);

/// A state read error as revm sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct DbError(#[from] pub StateError);

impl DBErrorMarker for DbError {}

impl DatabaseRef for ViewDb<'_> {
    type Error = DbError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        let Some(acc) = self.0.account(address)? else { return Ok(None) };
        let code = match acc.code_hash == KECCAK_EMPTY {
            true => None,
            false => Some(crate::code::analyzed(acc.code_hash, || self.0.code(acc.code_hash))?),
        };
        Ok(Some(AccountInfo::new(acc.balance, acc.nonce, acc.code_hash, code.unwrap_or_default())))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(crate::code::analyzed(code_hash, || self.0.code(code_hash))?)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.0.storage(address, index)?)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(self.0.block_hash(number)?)
    }
}
