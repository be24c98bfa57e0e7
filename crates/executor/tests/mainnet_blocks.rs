//! The 62 historical Ethereum mainnet blocks of `../shared/data/mainnet-blocks`
//! (Frontier to Cancun) through Cairn's executor, each with the rules of its era:
//! `gasUsed` must equal the header's, and from Byzantium on (when receipts carry a
//! status instead of a state root) so must `receiptsRoot` and `logsBloom`. The
//! pre-state holds only the touched accounts, so the state root cannot be checked.

use alloy_consensus::proofs::calculate_receipt_root;
use alloy_primitives::{Bloom, B256, U256};
use cairn_executor::{BlockContext, Executor, Mode, SequentialExecutor, TxOutcome};
use cairn_primitives::{InMemoryState, RecoveredTx};
use revm::primitives::hardfork::SpecId;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mainnet-blocks")
}

fn read_gz(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).expect("gunzip");
    Some(text)
}

/// Mainnet's fork schedule (block numbers, then timestamps from Shanghai on). Forks that
/// only moved the difficulty bomb (Muir/Arrow/Gray Glacier) or the DAO balances change no
/// EVM rule and have no revm spec of their own.
fn spec_at(number: u64, timestamp: u64) -> SpecId {
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
    code: alloy_primitives::Bytes,
    storage: BTreeMap<U256, U256>,
}

struct MainnetBlock {
    number: u64,
    header: alloy_consensus::Header,
    txs: Vec<RecoveredTx>,
    state: InMemoryState,
}

fn load(dir: &Path) -> MainnetBlock {
    let block: alloy_rpc_types_eth::Block =
        serde_json::from_str(&read_gz(&dir.join("block.json.gz")).expect("block.json.gz")).expect("block json");
    let pre: BTreeMap<alloy_primitives::Address, PreAccount> =
        serde_json::from_str(&read_gz(&dir.join("pre_state.json.gz")).expect("pre_state.json.gz"))
            .expect("pre-state json");
    let mut state = InMemoryState::default();
    for (addr, acc) in pre {
        state.insert(addr, acc.nonce, acc.balance, acc.code);
        state.storage.insert(addr, acc.storage.into_iter().filter(|(_, v)| !v.is_zero()).collect());
    }
    if let Some(text) = read_gz(&dir.join("block_hashes.json.gz")) {
        let hashes: BTreeMap<String, B256> = serde_json::from_str(&text).expect("block hashes");
        for (n, h) in hashes {
            let n =
                n.strip_prefix("0x").map(|x| u64::from_str_radix(x, 16)).unwrap_or_else(|| n.parse()).expect("number");
            state.block_hashes.insert(n, h);
        }
    }
    let header = block.header.inner.clone();
    let txs = block.transactions.into_transactions().map(|tx| tx.inner).collect();
    MainnetBlock { number: header.number, header, txs, state }
}

fn context(h: &alloy_consensus::Header) -> BlockContext {
    let spec = spec_at(h.number, h.timestamp);
    BlockContext {
        number: h.number,
        timestamp: h.timestamp,
        beneficiary: h.beneficiary,
        gas_limit: h.gas_limit,
        base_fee: h.base_fee_per_gas.unwrap_or_default(),
        prevrandao: h.mix_hash,
        difficulty: h.difficulty,
        chain_id: 1,
        spec,
        tx_gas_cap: None,
        excess_blob_gas: h.excess_blob_gas.unwrap_or_default(),
    }
}

#[test]
fn mainnet_blocks_match_their_headers() {
    let mut dirs: Vec<_> = std::fs::read_dir(data_dir())
        .expect("../shared/data/mainnet-blocks")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("block.json.gz").exists())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 62, "the README promises 62 blocks");
    let mut failures = Vec::new();
    let mut receipts_checked = 0;
    for dir in &dirs {
        let block = load(dir);
        let ctx = context(&block.header);
        let out = match SequentialExecutor.execute(&block.state, &ctx, &block.txs, Mode::Replay) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("block {}: {e}", block.number));
                continue;
            }
        };
        if out.gas_used != block.header.gas_used {
            failures
                .push(format!("block {}: gas used {} != header {}", block.number, out.gas_used, block.header.gas_used));
        }
        if ctx.spec >= SpecId::BYZANTIUM {
            let receipts: Vec<_> = out
                .outcomes
                .iter()
                .filter_map(|o| match o {
                    TxOutcome::Included(r) => Some(r.envelope()),
                    TxOutcome::Skipped(_) => None,
                })
                .collect();
            let root = calculate_receipt_root(&receipts);
            if root != block.header.receipts_root {
                failures.push(format!(
                    "block {}: receipts root {root} != header {}",
                    block.number, block.header.receipts_root
                ));
            }
            let mut bloom = Bloom::ZERO;
            for r in &receipts {
                bloom.accrue_bloom(r.logs_bloom());
            }
            if bloom != block.header.logs_bloom {
                failures.push(format!("block {}: logs bloom differs", block.number));
            }
            receipts_checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} of {} blocks failed:\n{}", failures.len(), dirs.len(), failures.join("\n"));
    assert!(receipts_checked >= 45, "only {receipts_checked} post-Byzantium blocks checked");
}
