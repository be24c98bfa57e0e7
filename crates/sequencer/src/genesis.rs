//! The chain's first block: genesis state and header.

use alloy_consensus::{Header, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH};
use alloy_primitives::{keccak256, B256};
use cairn_primitives::{AccountChange, AccountState, ChainConfig, GenesisAlloc, Hardfork, StateDiff, U256};
use cairn_storage::Store;
use cairn_trie::StateCommitter;

use crate::error::SequencerError;

/// EIP-7685 requests hash of a block with no requests (Prague headers carry it).
pub fn requests_hash(config: &ChainConfig) -> Option<B256> {
    (config.hardfork == Hardfork::Prague).then_some(alloy_eips::eip7685::EMPTY_REQUESTS_HASH)
}

pub(crate) fn write_genesis(
    store: &Store,
    config: &ChainConfig,
    alloc: &GenesisAlloc,
    committer: &dyn StateCommitter,
) -> Result<(), SequencerError> {
    let mut diff = StateDiff::default();
    for (addr, acc) in &alloc.accounts {
        let code_hash = if acc.code.is_empty() { cairn_primitives::KECCAK_EMPTY } else { keccak256(&acc.code) };
        if !acc.code.is_empty() {
            diff.code.insert(code_hash, acc.code.clone());
        }
        let storage = acc.storage.iter().map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0))).collect();
        diff.accounts.insert(
            *addr,
            AccountChange {
                info: Some(AccountState { nonce: acc.nonce, balance: acc.balance, code_hash }),
                storage_wiped: true,
                storage,
                original: Default::default(),
            },
        );
    }
    let timestamp = if alloc.timestamp == 0 { crate::fragments::now_secs() } else { alloc.timestamp };
    let pre = store.reader()?;
    let mut writer = store.writer()?;
    let state_root = committer.commit(&pre, &mut writer, &diff)?;
    let header = Header {
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        state_root,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        gas_limit: config.gas_limit,
        timestamp,
        extra_data: alloc.extra_data.clone(),
        base_fee_per_gas: Some(config.initial_base_fee),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        requests_hash: requests_hash(config),
        ..Default::default()
    };
    writer.put_block(&header, &[], &[])?;
    writer.set_chain_config(config)?;
    writer.set_head(0)?;
    writer.commit()?;
    Ok(())
}
