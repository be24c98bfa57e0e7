//! End to end with web3.py 8 (PyPI, installed into tools/python by the README's test
//! command): block, pending and contract-event filters, unlocked-account transactions,
//! a contract deployed and called (`tools/web3py-e2e.py`).

mod common;

use common::Node;
use std::path::Path;
use std::process::Command;

#[test]
fn web3py_filters_and_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(root.join("tools/python/web3").exists(), "web3.py is missing: run the test command from the README");
    let out = Command::new("python3")
        .arg(root.join("tools/web3py-e2e.py"))
        .arg(node.http())
        .arg(cairn_workload::default_artifacts_path())
        .env("PYTHONPATH", root.join("tools/python"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "web3.py script failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().expect("a line")).expect("json");
    assert_eq!(r["connected"], true, "{r}");
    assert_eq!(r["chainId"], 31337, "{r}");
    assert_eq!(r["sendStatus"], 1, "{r}");
    assert_eq!(r["blockFilterSawBlock"], true, "{r}");
    assert_eq!(r["pendingFilterSawTx"], true, "{r}");
    assert_eq!(r["blockFilterEmptyAfter"], true, "{r}");
    assert_eq!(r["eventCount"], 1, "{r}");
    assert_eq!(r["eventValue"], 77, "{r}");
    assert_eq!(r["eventTo"], "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "{r}");
    assert_eq!(r["balance"], 77, "{r}");
    assert_eq!(r["uninstalled"], true, "{r}");
}
