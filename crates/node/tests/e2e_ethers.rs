//! End to end with ethers 6 (npm, pinned in tools/): the flow that failed before the
//! receipt rule (`docs/PRECONF.md`): `tx.wait()`, `ContractFactory.deploy` +
//! `waitForDeployment()`, `contract.on` over HTTP (filters) and WebSocket, and a block
//! filter polled by hand. ethers rejects a receipt without a block hash, so every wait
//! passing is the check that `eth_getTransactionReceipt` answers sealed receipts.

mod common;

use common::Node;
use std::path::Path;
use std::process::Command;

#[test]
fn ethers_waits_deploys_and_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        root.join("tools/node_modules/ethers").exists(),
        "ethers is missing: run the test command from the README (it installs it from npm)"
    );
    let artifacts = cairn_workload::default_artifacts_path();
    let out = Command::new("node")
        .arg(root.join("tools/ethers-e2e.mjs"))
        .arg(node.http())
        .arg(&artifacts)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ethers script failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json line");
    assert_eq!(r["sendStatus"], 1, "{r}");
    assert!(r["sendBlockHash"].as_str().is_some_and(|h| h.len() == 66), "{r}");
    assert_eq!(r["blockHashMatches"], true, "{r}");
    assert!(r["confirmations"].as_u64().expect("confirmations") >= 1, "{r}");
    assert_eq!(r["deployed"], true, "{r}");
    assert_eq!(r["symbol"], "ETH6", "{r}");
    assert_eq!((r["mintStatus"].as_u64(), r["mintLogs"].as_u64()), (Some(1), Some(1)), "{r}");
    for event in ["httpEvent", "wsEvent"] {
        assert_eq!(r[event]["dest"], "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "{event}: {r}");
        assert_eq!(r[event]["value"], "1234", "{event}: {r}");
    }
    assert_eq!(r["balance"], "1234", "{r}");
    assert_eq!(r["filterSawBlock"], true, "{r}");
    assert_eq!(r["uninstalled"], true, "{r}");
    eprintln!("send → tx.wait() ms: {}", r["waitMs"]);
}
