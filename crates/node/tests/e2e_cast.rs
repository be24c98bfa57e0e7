//! End to end with Foundry's `cast` (npm `@foundry-rs/cast`, installed by the README's
//! test command into tools/node_modules): the CLI users already have, unchanged.

mod common;

use cairn_workload::Artifacts;
use common::{tool, Node};
use std::process::Command;

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ADDR0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

struct Cast {
    rpc: String,
}

impl Cast {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        // `--rpc-url` goes right after the subcommand: `send --create CODE [ARGS]...` takes the rest.
        let out = Command::new(tool("cast"))
            .arg(args[0])
            .args(["--rpc-url", &self.rpc])
            .args(&args[1..])
            .output()
            .expect("run cast");
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        // cast 1.7 can exit 0 after printing `Error: ...` for a rejected send: count both.
        if out.status.success() && !stderr.contains("Error:") {
            Ok(stdout)
        } else {
            Err(stderr)
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_else(|e| panic!("cast {args:?} failed: {e}"))
    }

    fn send(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["send", "--private-key", KEY0, "--json"];
        all.extend_from_slice(args);
        let receipt: serde_json::Value = serde_json::from_str(&self.ok(&all)).expect("receipt json");
        assert_eq!(receipt["status"], "0x1", "cast send {args:?}: {receipt}");
        receipt
    }

    fn deploy(&self, code: &str) -> String {
        let r = self.send(&["--create", code]);
        r["contractAddress"].as_str().expect("contract address").to_string()
    }
}

#[test]
fn cast_deploys_trades_and_sees_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let cast = Cast { rpc: node.http() };
    assert_eq!(cast.ok(&["chain-id"]), "31337");
    assert!(cast.ok(&["client"]).starts_with("cairn/"));

    let art = Artifacts::load_default().expect("artifacts");
    let ta = cast.deploy(&art.token_deploy("Alpha", "A").to_string());
    let tb = cast.deploy(&art.token_deploy("Beta", "B").to_string());
    let pair = cast.deploy(&art.pair_deploy(ta.parse().expect("addr"), tb.parse().expect("addr")).to_string());
    assert_eq!(cast.ok(&["call", &ta, "symbol()(string)"]), "\"A\"");

    for t in [&ta, &tb] {
        let r = cast.send(&[t, "mint(address,uint256)", ADDR0, "1000000000000000000000000"]);
        assert_eq!(r["logs"].as_array().expect("logs").len(), 1);
        cast.send(&[
            t,
            "approve(address,uint256)",
            &pair,
            "115792089237316195423570985008687907853269984665640564039457584007913129639935",
        ]);
    }
    cast.send(&[&pair, "addLiquidity(uint256,uint256)", "1000000000000000000000", "1000000000000000000000"]);
    assert_eq!(
        cast.ok(&["call", &pair, "reserve0()(uint112)"]).split_whitespace().next(),
        Some("1000000000000000000000")
    );
    let gas = cast.ok(&[
        "estimate",
        "--from",
        ADDR0,
        &pair,
        "swap(bool,uint256,uint256,address)",
        "true",
        "1000000000000000000",
        "1",
        ADDR0,
    ]);
    assert!(gas.parse::<u64>().expect("gas") > 50_000, "{gas}");
    let r = cast.send(&[&pair, "swap(bool,uint256,uint256,address)", "true", "1000000000000000000", "1", ADDR0]);
    assert_eq!(r["logs"].as_array().expect("logs").len(), 4, "two transfers, Sync, Swap");
    let out = cast.ok(&[
        "call",
        &pair,
        "getAmountOut(uint256,uint256,uint256)(uint256)",
        "1000000000000000000",
        "1000000000000000000000",
        "1000000000000000000000",
    ]);
    let expected_out = out.split_whitespace().next().expect("amount").to_string();
    let b_balance = cast.ok(&["call", &tb, "balanceOf(address)(uint256)", ADDR0]);
    let expected_b: u128 = 999_000_000_000_000_000_000_000 + expected_out.parse::<u128>().expect("u128");
    assert_eq!(b_balance.split_whitespace().next(), Some(expected_b.to_string().as_str()));

    let friend = "0x00000000000000000000000000000000000c0ffe";
    let r = cast.send(&["--value", "1ether", friend]);
    let hash = r["transactionHash"].as_str().expect("hash");
    assert_eq!(cast.ok(&["balance", friend]), "1000000000000000000");
    let tx: serde_json::Value = serde_json::from_str(&cast.ok(&["tx", hash, "--json"])).expect("tx json");
    assert_eq!(tx["to"].as_str().map(str::to_lowercase), Some(friend.to_string()));
    let block: serde_json::Value = serde_json::from_str(&cast.ok(&["block", "latest", "--json"])).expect("block json");
    assert!(block["number"].as_str().is_some());
    let logs =
        cast.ok(&["logs", "--from-block", "0", "--address", &pair, "Swap(address,bool,uint256,uint256,address)"]);
    assert!(logs.contains(&pair.to_lowercase()[2..]) || logs.to_lowercase().contains(&pair.to_lowercase()), "{logs}");

    // errors come back with geth's wording
    let err =
        cast.run(&["send", "--private-key", KEY0, "--nonce", "0", friend, "--value", "1"]).expect_err("nonce too low");
    assert!(err.contains("nonce too low"), "{err}");
    let err =
        cast.run(&["send", "--private-key", KEY0, "--value", "100000ether", friend]).expect_err("insufficient funds");
    assert!(err.contains("insufficient funds"), "{err}");
    let raw = cast.ok(&[
        "mktx",
        "--private-key",
        KEY0,
        "--chain",
        "1",
        "--nonce",
        "99",
        "--gas-limit",
        "21000",
        "--gas-price",
        "10gwei",
        "--priority-gas-price",
        "1gwei",
        friend,
    ]);
    let err = cast.run(&["publish", &raw]).expect_err("wrong chain");
    assert!(err.contains("invalid chain id for signer"), "{err}");
    let err = cast.run(&["call", "--from", friend, &ta, "transfer(address,uint256)", ADDR0, "1"]).expect_err("revert");
    assert!(err.contains("execution reverted") && err.contains("balance"), "{err}");
}

/// `cast run` (re-executes a mined transaction from the node's state: blocks, proofs,
/// storage at the parent block) and `cast trace` (Parity `trace_transaction`) show the
/// mint's call and its Transfer event.
#[test]
fn cast_run_and_trace_a_mined_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let cast = Cast { rpc: node.http() };
    let art = Artifacts::load_default().expect("artifacts");
    let token = cast.deploy(&alloy_primitives::hex::encode_prefixed(art.token_deploy("Run", "RUN")));
    let receipt = cast.send(&[&token, "mint(address,uint256)", ADDR0, "5"]);
    let hash = receipt["transactionHash"].as_str().expect("hash").to_string();
    let run = cast.ok(&["run", &hash]);
    assert!(run.contains("mint(0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266, 5)"), "{run}");
    assert!(run.contains("emit Transfer"), "{run}");
    assert!(run.contains("Transaction successfully executed"), "{run}");
    let trace: serde_json::Value = serde_json::from_str(&cast.ok(&["trace", &hash])).expect("trace json");
    let first = &trace[0];
    assert_eq!(first["type"], "call", "{trace}");
    assert_eq!(first["action"]["to"].as_str().map(str::to_lowercase), Some(token.to_lowercase()), "{trace}");
    assert_eq!(first["transactionHash"], hash.as_str(), "{trace}");
}
