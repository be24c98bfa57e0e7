//! Every implemented method of the Ethereum Execution APIs specification
//! (`../shared/data/execution-apis`) answers in the shape the specification requires:
//! a fresh `cairn dev` with some history (a token deployed, minted, transferred, a
//! pending transaction, a filter) is asked each method, in its found and not-found
//! cases, and every result is validated against the method's JSON Schema by the
//! `jsonschema` package (PyPI, installed into tools/python by the README's test
//! command). The methods of the specification Cairn does not implement are listed,
//! so that the list only shrinks.

mod common;

use alloy_primitives::{hex, Address, U256};
use cairn_workload::{mint_call, transfer_call, Artifacts};
use common::{rpc_raw, Node};
use serde_json::{json, Value};
use std::path::Path;

/// Methods of the specification not implemented yet, and `eth_signTransaction`, whose
/// raw-string answer differs from the specification on purpose (see below).
const NOT_IMPLEMENTED: [&str; 6] = [
    "debug_getBadBlocks",
    "debug_getRawBlockAccessList",
    "eth_capabilities",
    "eth_fillTransaction",
    "eth_getBlockAccessList",
    "eth_signTransaction",
];

struct Session {
    client: reqwest::Client,
    url: String,
    results: Vec<Value>,
}

impl Session {
    async fn ask(&mut self, method: &str, params: Value) -> Value {
        let r = rpc_raw(&self.client, &self.url, method, params.clone()).await;
        assert!(r.get("error").is_none(), "{method} {params}: {r}");
        self.results.push(json!({"method": method, "params": params, "result": r["result"]}));
        r["result"].clone()
    }

    async fn receipt(&mut self, hash: &Value) -> Value {
        common::wait_receipt(&self.client, &self.url, hash, std::time::Duration::from_secs(60)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_matches_the_execution_apis_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let mut s = Session { client: reqwest::Client::new(), url: node.http(), results: Vec::new() };
    let accounts: Vec<Address> = serde_json::from_value(s.ask("eth_accounts", json!([])).await).expect("accounts");
    let (me, other) = (accounts[0], accounts[1]);
    let art = Artifacts::load_default().expect("artifacts");

    // Some history: a token, a mint, a transfer (with logs), a plain payment.
    let deploy = s
        .ask("eth_sendTransaction", json!([{"from": me, "data": hex::encode_prefixed(art.token_deploy("S", "S"))}]))
        .await;
    let token: Address = serde_json::from_value(s.receipt(&deploy).await["contractAddress"].clone()).expect("address");
    let mint = json!({"from": me, "to": token, "data": hex::encode_prefixed(mint_call(me, U256::from(1_000)))});
    let hash = s.ask("eth_sendTransaction", json!([mint])).await;
    s.receipt(&hash).await;
    let log_filter = s.ask("eth_newFilter", json!([{"fromBlock": "0x0", "address": token}])).await;
    let block_filter = s.ask("eth_newBlockFilter", json!([])).await;
    let pending_filter = s.ask("eth_newPendingTransactionFilter", json!([])).await;
    let transfer = json!({"from": me, "to": token, "data": hex::encode_prefixed(transfer_call(other, U256::from(5)))});
    let tx_hash = s.ask("eth_sendTransaction", json!([transfer.clone()])).await;
    let receipt = s.receipt(&tx_hash).await;
    // eth_signTransaction answers the raw transaction, as anvil and hardhat do and as
    // ethers (`JsonRpcSigner.signTransaction`) and viem read it; the specification's
    // `{raw, tx}` object would break them (docs/RPC.md). Not schema-checked for that.
    let raw =
        rpc_raw(&s.client, &s.url, "eth_signTransaction", json!([{"from": other, "to": me, "value": "0x1"}])).await;
    let raw = raw["result"].clone();
    assert!(raw.as_str().is_some_and(|r| r.starts_with("0x02")), "{raw}");
    let paid = s.ask("eth_sendRawTransaction", json!([raw])).await;
    s.receipt(&paid).await;
    let (block_hash, block_number) = (receipt["blockHash"].clone(), receipt["blockNumber"].clone());
    // A transaction held by a nonce gap, for the pool methods.
    let gap = s.ask("eth_getTransactionCount", json!([other, "pending"])).await;
    let gap = u64::from_str_radix(gap.as_str().expect("hex").trim_start_matches("0x"), 16).expect("nonce") + 5;
    let queued = rpc_raw(
        &s.client,
        &s.url,
        "eth_signTransaction",
        json!([{"from": other, "to": me, "value": "0x1", "nonce": format!("{gap:#x}"), "gas": "0x5208"}]),
    )
    .await["result"]
        .clone();
    let queued_hash = s.ask("eth_sendRawTransaction", json!([queued])).await;

    let missing = json!(format!("{:#066x}", 0xdead));
    let slot = json!(format!("{:#x}", cairn_workload::token_balance_slot(me)));
    let calls: Vec<(&str, Value)> = vec![
        ("eth_chainId", json!([])),
        ("eth_syncing", json!([])),
        ("eth_coinbase", json!([])),
        ("eth_blockNumber", json!([])),
        ("eth_config", json!([])),
        ("net_version", json!([])),
        ("eth_gasPrice", json!([])),
        ("eth_blobBaseFee", json!([])),
        ("eth_baseFee", json!([])),
        (
            "eth_getStorageValues",
            json!([{token.to_string(): [slot.clone(), "0x2"], me.to_string(): ["0x0"]}, "latest"]),
        ),
        ("eth_maxPriorityFeePerGas", json!([])),
        ("eth_feeHistory", json!(["0x4", "latest", [25, 75]])),
        ("eth_feeHistory", json!(["0x2", "latest"])),
        ("eth_getBlockByNumber", json!(["latest", true])),
        ("eth_getBlockByNumber", json!([block_number, false])),
        ("eth_getBlockByNumber", json!(["0xffffff", false])),
        ("eth_getBlockByHash", json!([block_hash, true])),
        ("eth_getBlockByHash", json!([missing, false])),
        ("eth_getBlockTransactionCountByHash", json!([block_hash])),
        ("eth_getBlockTransactionCountByNumber", json!([block_number])),
        ("eth_getBlockReceipts", json!([block_number])),
        ("eth_getBlockReceipts", json!(["0xffffff"])),
        ("eth_getTransactionByHash", json!([tx_hash])),
        ("eth_getTransactionByHash", json!([missing])),
        ("eth_getTransactionByBlockHashAndIndex", json!([block_hash, "0x0"])),
        ("eth_getTransactionByBlockNumberAndIndex", json!([block_number, "0x0"])),
        ("eth_getTransactionByBlockNumberAndIndex", json!([block_number, "0x9"])),
        ("eth_getTransactionReceipt", json!([tx_hash])),
        ("eth_getTransactionReceipt", json!([missing])),
        ("eth_getBalance", json!([me, "latest"])),
        ("eth_getTransactionCount", json!([me, "pending"])),
        ("eth_getCode", json!([token, "latest"])),
        ("eth_getStorageAt", json!([token, slot, "latest"])),
        ("eth_getProof", json!([token, [slot], "latest"])),
        // Short keys are quantities the specification allows.
        ("eth_getProof", json!([token, ["0x0", "0x3"], "latest"])),
        (
            "eth_call",
            json!([{"to": token, "data": hex::encode_prefixed(cairn_workload::balance_of_call(me))}, "latest"]),
        ),
        ("eth_estimateGas", json!([transfer, "latest"])),
        ("eth_createAccessList", json!([transfer, "latest"])),
        ("eth_getLogs", json!([{"fromBlock": "0x0", "address": token}])),
        ("eth_getFilterLogs", json!([log_filter])),
        ("eth_getFilterChanges", json!([log_filter])),
        ("eth_getFilterChanges", json!([block_filter])),
        ("eth_getFilterChanges", json!([pending_filter])),
        ("eth_uninstallFilter", json!([pending_filter])),
        ("eth_sign", json!([me, "0xdeadbeef"])),
        ("debug_getRawHeader", json!([block_number])),
        ("debug_getRawBlock", json!([block_number])),
        ("debug_getRawTransaction", json!([tx_hash])),
        ("debug_getRawReceipts", json!([block_number])),
        ("debug_traceTransaction", json!([tx_hash])),
        ("debug_traceTransaction", json!([tx_hash, {"tracer": "callTracer", "tracerConfig": {"withLog": true}}])),
        ("debug_traceTransaction", json!([tx_hash, {"tracer": "prestateTracer", "tracerConfig": {"diffMode": true}}])),
        ("debug_traceBlockByNumber", json!([block_number, {"tracer": "callTracer"}])),
        ("debug_traceBlockByHash", json!([block_hash, {"tracer": "4byteTracer"}])),
        (
            "eth_simulateV1",
            json!([{"blockStateCalls": [
                {"stateOverrides": {other.to_string(): {"balance": "0xde0b6b3a7640000"}},
                 "calls": [{"from": other, "to": me, "value": "0x1"}, {"from": me, "to": token, "data": "0xdeadbeef"}]},
                {"blockOverrides": {"time": "0x7fffffff"}, "calls": [transfer.clone()]}
            ], "traceTransfers": true, "returnFullTransactions": true}, "latest"]),
        ),
        ("eth_simulateV1", json!([{"blockStateCalls": [{"calls": [transfer.clone()]}], "validation": true}, "latest"])),
        ("txpool_status", json!([])),
        ("txpool_content", json!([])),
        ("txpool_contentFrom", json!([other])),
    ];
    for (method, params) in calls {
        s.ask(method, params).await;
    }
    // eth_getStorageValues reads what eth_getStorageAt reads.
    let many = s.ask("eth_getStorageValues", json!([{token.to_string(): [slot.clone()]}, "latest"])).await;
    let one = s.ask("eth_getStorageAt", json!([token, slot, "latest"])).await;
    let many = many.as_object().expect("object").values().next().expect("the token")[0].clone();
    assert_eq!(many, one);
    assert_ne!(one, json!(format!("{:#066x}", 0)), "the minted balance");

    // A pending transaction: null block fields (geth's answer, which every client reads);
    // checked against the specification's PendingTransactionInfo.
    let pending = s.ask("eth_getTransactionByHash", json!([queued_hash])).await;
    s.results.pop();
    s.results.push(json!({"method": "eth_getTransactionByHash", "params": [queued_hash], "result": pending, "schema": "PendingTransactionInfo"}));

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let results = dir.path().join("results.json");
    std::fs::write(&results, serde_json::to_vec(&s.results).expect("json")).expect("write");
    let out = std::process::Command::new("python3")
        .arg(root.join("tools/validate-schemas.py"))
        .arg(root.join("../shared/data/execution-apis/execution-apis.json"))
        .arg(&results)
        .env("PYTHONPATH", root.join("tools/python"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schema check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let uncovered: Vec<&str> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("UNCOVERED"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(uncovered, NOT_IMPLEMENTED, "methods of the specification not exercised:\n{stdout}");
    eprintln!("{stdout}");
}
