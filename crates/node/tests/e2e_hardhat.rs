//! End to end with a hardhat 2 project (npm, pinned in tools/; `tools/hardhat-project`)
//! pointed at a fresh `cairn dev`: a deploy script (hardhat-ethers, ContractFactory,
//! `waitForDeployment`) and a mocha test with the unlocked accounts
//! (`eth_sendTransaction`), events, `evm_increaseTime` / `evm_mine` /
//! `evm_setNextBlockTimestamp`, and the refusal of `evm_snapshot`.

mod common;

use common::Node;
use std::path::Path;
use std::process::Command;

fn hardhat(node: &Node, args: &[&str]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = root.join("tools/node_modules/.bin/hardhat");
    assert!(bin.exists(), "hardhat is missing: run the test command from the README (it installs it from npm)");
    let out = Command::new(bin)
        .args(args)
        .current_dir(root.join("tools/hardhat-project"))
        .env("CAIRN_URL", node.http())
        .env("ARTIFACTS", cairn_workload::default_artifacts_path())
        .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        .output()
        .expect("run hardhat");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_hardhat_project_deploys_and_its_tests_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (ok, out) = hardhat(&node, &["run", "--no-compile", "scripts/deploy.js"]);
    assert!(ok, "deploy script failed:\n{out}");
    let line = out.lines().find(|l| l.starts_with('{')).expect("a JSON line");
    let result: serde_json::Value = serde_json::from_str(line).expect("json");
    assert_eq!(result["balance"], "42", "{result}");
    assert_eq!(result["owner"], "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "the first unlocked account");
    let (ok, out) = hardhat(&node, &["test", "--no-compile"]);
    assert!(ok, "mocha tests failed:\n{out}");
    assert!(out.contains("5 passing"), "{out}");
}
