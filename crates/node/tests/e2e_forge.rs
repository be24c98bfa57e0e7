//! End to end with `forge script --broadcast` (npm `@foundry-rs/forge`, compiling with
//! solc-js behind `tools/forge-project/solc`, since forge cannot download compilers
//! here): a salted deployment (`new Counter{salt: …}`) goes through the predeployed
//! CREATE2 deployer, then a call; the contract is where CREATE2 puts it and holds the
//! call's effect.

mod common;

use alloy_primitives::{hex, keccak256, Address, B256};
use cairn_primitives::predeploys::CREATE2_DEPLOYER;
use common::{rpc_raw, Node};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_script_deploys_with_a_salt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let project = root.join("tools/forge-project");
    let forge = root.join("tools/node_modules/.bin/forge");
    assert!(forge.exists(), "forge is missing: run the test command from the README (it installs it from npm)");
    // Its own broadcast folder per run: forge writes the transactions it sent there.
    let out_dir = dir.path().join("forge-out");
    let out = Command::new(forge)
        .args(["script", "script/Deploy.s.sol", "--broadcast", "--rpc-url", &node.http(), "--private-key", KEY0])
        .arg("--cache-path")
        .arg(dir.path().join("forge-cache"))
        .env("FOUNDRY_BROADCAST", &out_dir)
        .env("FOUNDRY_OUT", dir.path().join("forge-artifacts"))
        .current_dir(&project)
        .output()
        .expect("run forge");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "forge script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ONCHAIN EXECUTION COMPLETE & SUCCESSFUL"), "{stdout}");

    let run: Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("Deploy.s.sol/31337/run-latest.json")).expect("broadcast record"),
    )
    .expect("json");
    let create = &run["transactions"][0];
    assert_eq!(create["transactionType"], "CREATE2", "{create}");
    let to: Address = serde_json::from_value(create["transaction"]["to"].clone()).expect("to");
    assert_eq!(to, CREATE2_DEPLOYER, "sent through the predeployed deployer");
    let input = hex::decode(create["transaction"]["input"].as_str().expect("input")).expect("hex");
    let expected = CREATE2_DEPLOYER.create2(B256::from_slice(&input[..32]), keccak256(&input[32..]));
    let deployed: Address = serde_json::from_value(create["contractAddress"].clone()).expect("address");
    assert_eq!(deployed, expected, "the CREATE2 address of salt and init code");

    let client = reqwest::Client::new();
    let code = rpc_raw(&client, &node.http(), "eth_getCode", json!([deployed, "latest"])).await;
    assert!(code["result"].as_str().expect("code").len() > 10, "{code}");
    // count() after the script's bump(): 1.
    let count =
        rpc_raw(&client, &node.http(), "eth_call", json!([{"to": deployed, "data": "0x06661abd"}, "latest"])).await;
    assert_eq!(count["result"], format!("{:#066x}", 1), "{count}");
}
