//! The historical mainnet blocks of `../shared/data/mainnet-blocks` (Frontier to
//! Cancun) with their pre-state, for executor tests and `cairn bench exec`.

use alloy_primitives::{Address, Bytes, B256, U256};
use cairn_executor::{BlockContext, SpecId};
use cairn_primitives::{InMemoryState, RecoveredTx};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::WorkloadError;

/// `../shared/data/mainnet-blocks`, found from the workspace root.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mainnet-blocks")
}

/// Mainnet's fork schedule (block numbers, then timestamps from Shanghai on). Forks that
/// only moved the difficulty bomb (Muir/Arrow/Gray Glacier) or the DAO balances change no
/// EVM rule and have no revm spec of their own.
pub fn spec_at(number: u64, timestamp: u64) -> SpecId {
    const BY_TIME: [(u64, SpecId); 2] = [(1_710_338_135, SpecId::CANCUN), (1_681_338_455, SpecId::SHANGHAI)];
    const BY_NUMBER: [(u64, SpecId); 10] = [
        (15_537_394, SpecId::MERGE),
        (12_965_000, SpecId::LONDON),
        (12_244_000, SpecId::BERLIN),
        (9_069_000, SpecId::ISTANBUL),
        (7_280_000, SpecId::PETERSBURG),
        (4_370_000, SpecId::BYZANTIUM),
        (2_675_000, SpecId::SPURIOUS_DRAGON),
        (2_463_000, SpecId::TANGERINE),
        (1_150_000, SpecId::HOMESTEAD),
        (0, SpecId::FRONTIER),
    ];
    if let Some((_, spec)) = BY_TIME.iter().find(|(t, _)| timestamp >= *t) {
        return *spec;
    }
    BY_NUMBER.iter().find(|(n, _)| number >= *n).map(|(_, s)| *s).unwrap_or(SpecId::FRONTIER)
}

#[derive(serde::Deserialize)]
struct PreAccount {
    balance: U256,
    nonce: u64,
    code: Bytes,
    storage: BTreeMap<U256, U256>,
}

/// One block: its header, transactions (senders recovered) and the state before it.
pub struct MainnetBlock {
    pub number: u64,
    pub header: alloy_consensus::Header,
    pub txs: Vec<RecoveredTx>,
    pub state: InMemoryState,
}

impl MainnetBlock {
    /// The block's execution context, with the rules of its era.
    pub fn context(&self) -> BlockContext {
        let h = &self.header;
        BlockContext {
            number: h.number,
            timestamp: h.timestamp,
            beneficiary: h.beneficiary,
            gas_limit: h.gas_limit,
            base_fee: h.base_fee_per_gas.unwrap_or_default(),
            prevrandao: h.mix_hash,
            difficulty: h.difficulty,
            chain_id: 1,
            spec: spec_at(h.number, h.timestamp),
            tx_gas_cap: None,
            excess_blob_gas: h.excess_blob_gas.unwrap_or_default(),
            contract_senders: false,
        }
    }
}

fn read_gz(path: &Path) -> Result<Option<String>, WorkloadError> {
    let Ok(file) = std::fs::File::open(path) else { return Ok(None) };
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| WorkloadError::Data(format!("{}: {e}", path.display())))?;
    Ok(Some(text))
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, WorkloadError> {
    let text = read_gz(path)?.ok_or_else(|| WorkloadError::Data(format!("{} is missing", path.display())))?;
    serde_json::from_str(&text).map_err(|e| WorkloadError::Data(format!("{}: {e}", path.display())))
}

/// Loads the block stored in `dir` (`block.json.gz`, `pre_state.json.gz`, and
/// `block_hashes.json.gz` when present).
pub fn load(dir: &Path) -> Result<MainnetBlock, WorkloadError> {
    let block: alloy_rpc_types_eth::Block = json(&dir.join("block.json.gz"))?;
    let pre: BTreeMap<Address, PreAccount> = json(&dir.join("pre_state.json.gz"))?;
    let mut state = InMemoryState::default();
    for (addr, acc) in pre {
        state.insert(addr, acc.nonce, acc.balance, acc.code);
        state.storage.insert(addr, acc.storage.into_iter().filter(|(_, v)| !v.is_zero()).collect());
    }
    if let Some(text) = read_gz(&dir.join("block_hashes.json.gz"))? {
        let hashes: BTreeMap<String, B256> =
            serde_json::from_str(&text).map_err(|e| WorkloadError::Data(format!("block hashes: {e}")))?;
        for (n, h) in hashes {
            let number = match n.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => n.parse().ok(),
            }
            .ok_or_else(|| WorkloadError::Data(format!("bad block number {n}")))?;
            state.block_hashes.insert(number, h);
        }
    }
    let header = block.header.inner.clone();
    let txs = block.transactions.into_transactions().map(|tx| tx.inner).collect();
    Ok(MainnetBlock { number: header.number, header, txs, state })
}

/// The folders of all stored blocks, in block-number order.
pub fn block_dirs(root: &Path) -> Result<Vec<PathBuf>, WorkloadError> {
    let entries = std::fs::read_dir(root).map_err(|e| WorkloadError::Data(format!("{}: {e}", root.display())))?;
    let mut dirs: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("block.json.gz").exists())
        .filter_map(|p| Some((p.file_name()?.to_str()?.parse().ok()?, p)))
        .collect();
    dirs.sort();
    Ok(dirs.into_iter().map(|(_, p)| p).collect())
}
