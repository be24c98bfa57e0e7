//! `cairn testnet init` and `cairn node --home` with the real binary: a single-validator
//! set runs as a validator node (its key proposes, Solo decides, full JSON-RPC, no
//! development controls), its genesis is fixed by the home (the same genesis block after
//! the data is wiped), and a home without a validator key in a set of one (a full node
//! with no consensus to follow) is refused with the reason.

mod common;

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, U256};
use cairn_primitives::{dev_accounts, DEV_MNEMONIC};
use cairn_workload::TxFactory;
use common::rpc_raw;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

/// `cairn node --home`; its RPC URL once it listens.
fn start(home: &Path) -> (Child, String) {
    let mut child = cairn()
        .arg("node")
        .arg("--home")
        .arg(home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let url = format!("http://{}", common::listening_on(&mut child).expect("the node exited before listening"));
    (child, url)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn init(out: &Path, validators: usize) {
    let status = cairn()
        .args(["testnet", "init", "--validators", &validators.to_string(), "--base-port", "30000", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .expect("run init");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_validator_home_runs_and_a_full_node_of_a_set_of_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let set = dir.path().join("set");
    init(&set, 1);
    let home = set.join("node-0");
    // Any free port for the test.
    let config = std::fs::read_to_string(home.join("config.toml")).expect("config");
    std::fs::write(home.join("config.toml"), config.replace("127.0.0.1:30000", "127.0.0.1:0")).expect("write");
    let genesis: Value =
        serde_json::from_slice(&std::fs::read(home.join("genesis.json")).expect("genesis")).expect("json");
    let validator = genesis["validators"][0]["address"].as_str().expect("address").to_lowercase();

    let client = reqwest::Client::new();
    let (child, url) = start(&home);
    let signer = dev_accounts(DEV_MNEMONIC, 1).expect("derive").remove(0).signer;
    let tx = TxFactory::new(31337).transfer_eth(&signer, 0, Address::repeat_byte(5), U256::from(7)).expect("sign");
    let raw = alloy_primitives::hex::encode_prefixed(tx.encoded_2718());
    let sent = rpc_raw(&client, &url, "eth_sendRawTransaction", json!([raw])).await;
    let receipt = common::wait_receipt(&client, &url, &sent["result"], std::time::Duration::from_secs(60)).await;
    assert_eq!(receipt["status"], "0x1");
    let seq =
        rpc_raw(&client, &url, "cairn_getSequencerBlock", json!([receipt["blockNumber"]])).await["result"].clone();
    assert_eq!(seq["proposer"].as_str().map(str::to_lowercase), Some(validator.clone()), "the validator proposes");
    assert_eq!(seq["certificate"]["kind"], "solo");
    let r = rpc_raw(&client, &url, "evm_mine", json!([])).await;
    assert_eq!(r["error"]["code"], -32601, "no development controls on a validator: {r}");
    let genesis_hash =
        rpc_raw(&client, &url, "eth_getBlockByNumber", json!(["0x0", false])).await["result"]["hash"].clone();
    stop(child);

    // The genesis is the home's: the same block after the data is wiped.
    std::fs::remove_dir_all(home.join("data")).expect("wipe");
    let (child, url) = start(&home);
    let again = rpc_raw(&client, &url, "eth_getBlockByNumber", json!(["0x0", false])).await["result"]["hash"].clone();
    assert_eq!(again, genesis_hash);
    stop(child);

    // A home without a validator key in a set of one: no consensus for a full node to
    // follow, refused with the reason.
    let config = std::fs::read_to_string(home.join("config.toml")).expect("config");
    let without_key: String =
        config.lines().filter(|l| !l.starts_with("validator_key")).map(|l| format!("{l}\n")).collect();
    std::fs::write(home.join("config.toml"), without_key).expect("write");
    let out = cairn().arg("node").arg("--home").arg(&home).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a set of one validator has no consensus for a full node to follow"), "{err}");
}
