use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_signer_local::{coins_bip39::English, MnemonicBuilder, PrivateKeySigner};
use std::collections::BTreeMap;
use std::path::Path;

/// The mnemonic of the well-known development accounts (Hardhat, Anvil, Foundry).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid genesis file {path}: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("invalid mnemonic or derivation index {index}: {reason}")]
    Mnemonic { index: u32, reason: String },
}

/// One prefunded genesis account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GenesisAccount {
    pub balance: U256,
    pub nonce: u64,
    pub code: Bytes,
    pub storage: BTreeMap<B256, B256>,
}

/// The genesis allocation: every account that exists before block 1.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GenesisAlloc {
    pub accounts: BTreeMap<Address, GenesisAccount>,
    /// Genesis timestamp (seconds); 0 means "now" at first start.
    pub timestamp: u64,
    pub extra_data: Bytes,
}

/// A development account: address and private key derived from a mnemonic.
#[derive(Debug, Clone)]
pub struct DevAccount {
    pub address: Address,
    pub signer: PrivateKeySigner,
}

/// Derives `count` accounts at `m/44'/60'/0'/0/i` from `mnemonic`.
pub fn dev_accounts(mnemonic: &str, count: u32) -> Result<Vec<DevAccount>, GenesisError> {
    (0..count)
        .map(|index| {
            let signer = MnemonicBuilder::<English>::default()
                .phrase(mnemonic)
                .index(index)
                .and_then(|b| b.build())
                .map_err(|e| GenesisError::Mnemonic { index, reason: e.to_string() })?;
            Ok(DevAccount { address: signer.address(), signer })
        })
        .collect()
}

impl GenesisAlloc {
    /// Ten thousand ether to each development account.
    pub fn dev(accounts: &[DevAccount]) -> Self {
        let balance = U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64));
        let accounts = accounts.iter().map(|a| (a.address, GenesisAccount { balance, ..Default::default() })).collect();
        Self { accounts, timestamp: 0, extra_data: Bytes::new() }
    }

    /// The same, with the predeployed contracts (`crate::predeploys`) added where the
    /// allocation has no account yet: `cairn dev`'s default genesis.
    pub fn with_predeploys(mut self) -> Self {
        for (address, code) in crate::predeploys::all() {
            self.accounts.entry(address).or_insert(GenesisAccount { code, nonce: 1, ..Default::default() });
        }
        self
    }

    pub fn from_geth(genesis: alloy_genesis::Genesis) -> Self {
        let accounts = genesis.alloc.into_iter().map(|(addr, acc)| (addr, account_from_geth(acc))).collect();
        Self { accounts, timestamp: genesis.timestamp, extra_data: genesis.extra_data }
    }
}

/// A geth-style genesis account.
pub fn account_from_geth(acc: alloy_genesis::GenesisAccount) -> GenesisAccount {
    GenesisAccount {
        balance: acc.balance,
        nonce: acc.nonce.unwrap_or(0),
        code: acc.code.unwrap_or_default(),
        storage: acc.storage.unwrap_or_default().into_iter().collect(),
    }
}

/// Reads a geth-style genesis JSON (`{"alloc": {...}}`); also returns its chain id if set.
pub fn load_genesis_file(path: &Path) -> Result<(GenesisAlloc, Option<u64>), GenesisError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read { path: shown.clone(), source })?;
    let genesis: alloy_genesis::Genesis =
        serde_json::from_str(&text).map_err(|source| GenesisError::Parse { path: shown, source })?;
    let chain_id = (genesis.config.chain_id != 1).then_some(genesis.config.chain_id);
    Ok((GenesisAlloc::from_geth(genesis), chain_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_dev_account_is_the_well_known_one() {
        let accounts = dev_accounts(DEV_MNEMONIC, 2).expect("derive");
        assert_eq!(accounts[0].address, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse::<Address>().expect("addr"));
        assert_eq!(accounts[1].address, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse::<Address>().expect("addr"));
    }

    #[test]
    fn geth_genesis_alloc_is_read() {
        let json = r#"{"config":{"chainId":777},"alloc":{
            "0x1000000000000000000000000000000000000001":{"balance":"0x10","nonce":"0x2",
             "code":"0x6000","storage":{"0x01":"0x02"}}}}"#;
        let dir = std::env::temp_dir().join(format!("cairn-genesis-{}", std::process::id()));
        std::fs::write(&dir, json).expect("write");
        let (alloc, chain_id) = load_genesis_file(&dir).expect("load");
        std::fs::remove_file(&dir).ok();
        assert_eq!(chain_id, Some(777));
        let acc = alloc.accounts.values().next().expect("one account");
        assert_eq!(acc.balance, U256::from(16));
        assert_eq!(acc.nonce, 2);
        assert_eq!(acc.code.len(), 2);
        assert_eq!(acc.storage.len(), 1);
    }
}
