//! Every `ethereum/tests` GeneralStateTests fixture (../shared/data, Cancun post-states)
//! through Cairn's own executor path: the fixture's signed `txbytes` are decoded and
//! sender-recovered like ingress does, executed by `SequentialExecutor` in replay mode,
//! and the resulting state root and logs hash are compared with the fixture's.
//!
//! A case that expects an exception passes when decoding, recovery or execution rejects
//! the transaction and the state is left as it was.
//!
//! Exclusions (the same files revm's own state-test runner skips): five EIP-7610 cases
//! that create a contract over an address holding storage but no code and nonce 0 — a
//! state no real chain can reach, and one revm's `Database` interface cannot see
//! (`EXCLUDED` below).
//!
//! `ValueOverflowParis.json` writes a value above 2^256 that the fixture parser rejects;
//! it is still checked: every one of its cases must expect an exception, and Cairn's
//! decoder must refuse its `txbytes`.

use alloy_consensus::transaction::SignerRecoverable;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{keccak256, Log, B256};
use cairn_executor::{BlockContext, Executor, Mode, SequentialExecutor, TxOutcome};
use cairn_primitives::{InMemoryState, TxEnvelope};
use revm::primitives::hardfork::SpecId;
use revm_statetest_types::{SpecName, TestSuite, TestUnit};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const EXCLUDED: [&str; 5] = [
    "InitCollisionParis.json",
    "create2collisionStorageParis.json",
    "dynamicAccountOverwriteEmpty_Paris.json",
    "RevertInCreateInInit_Paris.json",
    "RevertInCreateInInitCreate2Paris.json",
];

const ARCHIVE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/ethereum-tests/GeneralStateTests.tar.gz");

fn pre_state(unit: &TestUnit) -> InMemoryState {
    let mut state = InMemoryState::default();
    for (addr, acc) in &unit.pre {
        state.insert(*addr, acc.nonce, acc.balance, acc.code.clone());
        let slots = state.storage.entry(*addr).or_default();
        for (k, v) in &acc.storage {
            if !v.is_zero() {
                slots.insert(*k, *v);
            }
        }
    }
    let number: u64 = unit.env.current_number.saturating_to();
    for n in number.saturating_sub(256)..number {
        state.block_hashes.insert(n, keccak256(n.to_string().as_bytes()));
    }
    state
}

fn block(unit: &TestUnit) -> BlockContext {
    let env = &unit.env;
    BlockContext {
        number: env.current_number.saturating_to(),
        timestamp: env.current_timestamp.saturating_to(),
        beneficiary: env.current_coinbase,
        gas_limit: env.current_gas_limit.saturating_to(),
        base_fee: env.current_base_fee.unwrap_or_default().saturating_to(),
        prevrandao: env.current_random.unwrap_or_else(|| B256::from(env.current_difficulty.to_be_bytes::<32>())),
        difficulty: env.current_difficulty,
        chain_id: env.current_chain_id.map(|c| c.saturating_to()).unwrap_or(1),
        spec: SpecId::CANCUN,
        tx_gas_cap: None,
        excess_blob_gas: env.current_excess_blob_gas.unwrap_or_default().saturating_to(),
        contract_senders: false,
    }
}

/// Runs one case; `Err` describes a mismatch.
fn run_case(unit: &TestUnit, case: &revm_statetest_types::Test) -> Result<(), String> {
    let mut state = pre_state(unit);
    let ctx = block(unit);
    let raw = case.txbytes.as_ref().ok_or("no txbytes")?;
    let tx = TxEnvelope::decode_2718_exact(raw)
        .map_err(|e| e.to_string())
        .and_then(|tx| tx.try_into_recovered().map_err(|e| e.to_string()));
    let result =
        tx.and_then(|tx| SequentialExecutor.execute(&state, &ctx, &[tx], Mode::Replay).map_err(|e| e.to_string()));
    let logs: Vec<Log> = match (&result, &case.expect_exception) {
        (Ok(out), None) => {
            state.apply(&out.diff);
            match &out.outcomes[0] {
                TxOutcome::Included(r) => r.logs.clone(),
                other => return Err(format!("not included: {other:?}")),
            }
        }
        (Err(_), Some(_)) => Vec::new(),
        (Ok(_), Some(expected)) => return Err(format!("expected exception {expected}, but the transaction executed")),
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
    };
    let logs_hash = keccak256(alloy_rlp::encode(&logs));
    if logs_hash != case.logs {
        return Err(format!("logs hash {logs_hash} != {}", case.logs));
    }
    let root = cairn_trie::state_root_of(&state);
    if root != case.hash {
        return Err(format!("state root {root} != {}", case.hash));
    }
    Ok(())
}

/// A fixture the typed parser refuses: each Cancun case must expect an exception that
/// Cairn's decoder reproduces on the raw `txbytes`.
fn check_unparsable(text: &str) -> Result<(), String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut seen = 0;
    for unit in json.as_object().ok_or("not an object")?.values() {
        for case in unit["post"]["Cancun"].as_array().into_iter().flatten() {
            seen += 1;
            if case.get("expectException").is_none() {
                return Err("a case expects success".into());
            }
            let raw: alloy_primitives::Bytes =
                case["txbytes"].as_str().ok_or("no txbytes")?.parse().map_err(|e| format!("txbytes: {e}"))?;
            if TxEnvelope::decode_2718_exact(&raw).map(|tx| tx.try_into_recovered().is_ok()).unwrap_or(false) {
                return Err("its transaction decodes".into());
            }
        }
    }
    if seen == 0 {
        return Err("no Cancun cases".into());
    }
    Ok(())
}

#[test]
fn general_state_tests_cancun() {
    let file = std::fs::File::open(ARCHIVE).expect("GeneralStateTests archive (../shared/data)");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut fixtures = Vec::new();
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        if name.ends_with(".json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("read");
            fixtures.push((name, text));
        }
    }
    assert!(fixtures.len() > 2_600, "only {} fixture files", fixtures.len());

    let next = AtomicUsize::new(0);
    let cases = AtomicUsize::new(0);
    let excluded = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, text)) = fixtures.get(i) else { break };
                if EXCLUDED.iter().any(|x| name.ends_with(x)) {
                    excluded.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let suite: TestSuite = match serde_json::from_str(text) {
                    Ok(s) => s,
                    Err(e) => {
                        if let Err(why) = check_unparsable(text) {
                            failures.lock().expect("lock").push(format!("{name}: unparsable ({e}) and {why}"));
                        } else {
                            cases.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                };
                for (test_name, unit) in &suite.0 {
                    for (index, case) in unit.post.get(&SpecName::Cancun).into_iter().flatten().enumerate() {
                        cases.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = run_case(unit, case) {
                            failures.lock().expect("lock").push(format!("{name} {test_name}[{index}]: {e}"));
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    let cases = cases.into_inner();
    eprintln!("GeneralStateTests (Cancun): {cases} cases, {} failures", failures.len());
    assert!(cases > 20_000, "only {cases} Cancun cases ran");
    assert_eq!(excluded.into_inner(), EXCLUDED.len(), "every excluded file exists");
    assert!(
        failures.is_empty(),
        "{} of {cases} failed:\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}
