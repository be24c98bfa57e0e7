//! The predeployed contracts of `cairn dev`'s default genesis against the canonical
//! ones on anvil: Cairn's Multicall3-compatible contract at 0xcA11…CA11 (the canonical
//! Multicall3 deployed on anvil from its public presigned deployment transaction,
//! `fixtures/canonical/multicall3.tx`) and the deterministic CREATE2 deployer at
//! 0x4e59…956c (the canonical bytes, which forge checks; anvil has it built in). Every function of the
//! Multicall3 ABI is called on both with the same arguments and block overrides; the
//! answers (return data or revert data) must be identical. Also: the Multicall bytecode
//! Cairn embeds is what `contracts/Multicall.sol` compiles to with solc-js.

mod common;

use alloy_primitives::{hex, Address, Bytes, U256};
use alloy_sol_types::{sol, SolCall};
use cairn_primitives::predeploys::{CREATE2_DEPLOYER, MULTICALL3};
use cairn_primitives::{dev_accounts, DEV_MNEMONIC};
use cairn_workload::{balance_of_call, mint_call, Artifacts, TxFactory};
use common::{rpc_raw, Anvil, Node, Pair};
use serde_json::{json, Value};
use std::path::Path;

sol! {
    struct Call { address target; bytes callData; }
    struct Call3 { address target; bool allowFailure; bytes callData; }
    struct Call3Value { address target; bool allowFailure; uint256 value; bytes callData; }
    function aggregate(Call[] calls) payable returns (uint256 blockNumber, bytes[] returnData);
    function tryAggregate(bool requireSuccess, Call[] calls) payable;
    function tryBlockAndAggregate(bool requireSuccess, Call[] calls) payable;
    function blockAndAggregate(Call[] calls) payable;
    function aggregate3(Call3[] calls) payable;
    function aggregate3Value(Call3Value[] calls) payable;
    function getBlockHash(uint256 blockNumber);
    function getBlockNumber();
    function getCurrentBlockCoinbase();
    function getCurrentBlockDifficulty();
    function getCurrentBlockGasLimit();
    function getCurrentBlockTimestamp();
    function getEthBalance(address addr);
    function getLastBlockHash();
    function getBasefee();
    function getChainId();
    function totalSupply();
}

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn embedded_bytecode_is_what_the_sources_compile_to() {
    let out = std::process::Command::new("node")
        .arg(root().join("tools/compile-predeploys.mjs"))
        .arg(root().join("contracts"))
        .output()
        .expect("run node");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let compiled: Value = serde_json::from_slice(&out.stdout).expect("json");
    let expect = |name: &str| compiled[name].as_str().expect(name).parse::<Bytes>().expect("hex");
    assert_eq!(cairn_primitives::predeploys::multicall_code(), expect("Multicall"));
    assert_eq!(cairn_primitives::predeploys::beacon_roots_code(), expect("BeaconRoots"));
    assert_eq!(cairn_primitives::predeploys::block_hash_history_code(), expect("BlockHashHistory"));
}

/// The answer of a call: its return data, or its error code and revert data.
fn answer(v: &Value) -> Value {
    match v.get("error") {
        Some(e) => json!({"error": e["code"], "data": e.get("data")}),
        None => json!({"result": v["result"]}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predeploys_behave_as_the_canonical_contracts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let anvil = Anvil::start(&[]);
    let pair = Pair::new(node.http(), anvil.url.clone());
    // The canonical Multicall3 on anvil, from its presigned deployment transaction.
    let deployer = "0x05f32B3cC3888453ff71B01135B34FF8e41263F2";
    rpc_raw(&pair.client, &pair.anvil, "anvil_setBalance", json!([deployer, "0xde0b6b3a7640000"])).await;
    let presigned =
        std::fs::read_to_string(root().join("crates/node/tests/fixtures/canonical/multicall3.tx")).expect("fixture");
    let receipt = pair.send_raw(&pair.anvil, presigned.trim()).await;
    assert_eq!(
        receipt["contractAddress"].as_str().map(str::to_lowercase),
        Some(format!("{MULTICALL3:?}").to_lowercase())
    );
    for url in [&pair.cairn, &pair.anvil] {
        let code = rpc_raw(&pair.client, url, "eth_getCode", json!([MULTICALL3, "latest"])).await;
        assert!(code["result"].as_str().expect("code").len() > 100, "{url}: no Multicall3");
    }

    // A token on both (same sender and nonce: same address), with a balance.
    let s = dev_accounts(DEV_MNEMONIC, 1).expect("derive").remove(0).signer;
    let f = TxFactory::new(31337);
    let token = s.address().create(0);
    let txs = [
        f.create(&s, 0, Artifacts::load_default().expect("artifacts").token_deploy("T", "T"), 3_000_000).expect("sign"),
        f.call(&s, 1, token, mint_call(s.address(), U256::from(1_000)), 200_000).expect("sign"),
    ];
    for tx in &txs {
        let raw = hex::encode_prefixed(alloy_eips::eip2718::Encodable2718::encoded_2718(tx));
        for url in [&pair.cairn, &pair.anvil] {
            assert_eq!(pair.send_raw(url, &raw).await["status"], "0x1");
        }
    }

    let ok = Call { target: token, callData: balance_of_call(s.address()).into() };
    let fails = Call { target: token, callData: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]) };
    let ok3 = |allow| Call3 { target: token, allowFailure: allow, callData: ok.callData.clone() };
    let fail3 = |allow| Call3 { target: token, allowFailure: allow, callData: fails.callData.clone() };
    let holder = Address::repeat_byte(0x51);
    let pay = |value: u64, allow| Call3Value {
        target: holder,
        allowFailure: allow,
        value: U256::from(value),
        callData: Bytes::new(),
    };
    let failing_value =
        |allow| Call3Value { target: token, allowFailure: allow, value: U256::from(1), callData: Bytes::new() };
    let calls: Vec<(&str, Vec<u8>, u64)> = vec![
        (
            "aggregate",
            aggregateCall {
                calls: vec![ok.clone(), Call { target: token, callData: totalSupplyCall {}.abi_encode().into() }],
            }
            .abi_encode(),
            0,
        ),
        ("aggregate with a failure", aggregateCall { calls: vec![ok.clone(), fails.clone()] }.abi_encode(), 0),
        (
            "tryAggregate",
            tryAggregateCall { requireSuccess: false, calls: vec![ok.clone(), fails.clone()] }.abi_encode(),
            0,
        ),
        (
            "tryAggregate requiring success",
            tryAggregateCall { requireSuccess: true, calls: vec![fails.clone()] }.abi_encode(),
            0,
        ),
        (
            "tryBlockAndAggregate",
            tryBlockAndAggregateCall { requireSuccess: false, calls: vec![ok.clone(), fails.clone()] }.abi_encode(),
            0,
        ),
        ("blockAndAggregate", blockAndAggregateCall { calls: vec![ok.clone()] }.abi_encode(), 0),
        ("blockAndAggregate with a failure", blockAndAggregateCall { calls: vec![fails.clone()] }.abi_encode(), 0),
        ("aggregate3", aggregate3Call { calls: vec![ok3(false), fail3(true)] }.abi_encode(), 0),
        ("aggregate3 with a failure", aggregate3Call { calls: vec![ok3(false), fail3(false)] }.abi_encode(), 0),
        ("aggregate3Value", aggregate3ValueCall { calls: vec![pay(5, false), pay(7, false)] }.abi_encode(), 12),
        ("aggregate3Value mismatch", aggregate3ValueCall { calls: vec![pay(5, false)] }.abi_encode(), 6),
        (
            "aggregate3Value allowed failure",
            aggregate3ValueCall { calls: vec![failing_value(true), pay(2, false)] }.abi_encode(),
            3,
        ),
        ("aggregate3Value failure", aggregate3ValueCall { calls: vec![failing_value(false)] }.abi_encode(), 1),
        ("getBlockHash", getBlockHashCall { blockNumber: U256::from(99) }.abi_encode(), 0),
        ("getBlockNumber", getBlockNumberCall {}.abi_encode(), 0),
        ("getCurrentBlockCoinbase", getCurrentBlockCoinbaseCall {}.abi_encode(), 0),
        ("getCurrentBlockDifficulty", getCurrentBlockDifficultyCall {}.abi_encode(), 0),
        ("getCurrentBlockGasLimit", getCurrentBlockGasLimitCall {}.abi_encode(), 0),
        ("getCurrentBlockTimestamp", getCurrentBlockTimestampCall {}.abi_encode(), 0),
        ("getEthBalance", getEthBalanceCall { addr: token }.abi_encode(), 0),
        ("getLastBlockHash", getLastBlockHashCall {}.abi_encode(), 0),
        ("getBasefee", getBasefeeCall {}.abi_encode(), 0),
        ("getChainId", getChainIdCall {}.abi_encode(), 0),
        ("unknown selector", vec![0x12, 0x34, 0x56, 0x78], 0),
    ];
    // The same block on both: number, time, fee recipient, base fee, randomness, gas
    // limit and the hash of block 99.
    let block = json!({
        "number": "0x64", "time": "0x6553f100", "feeRecipient": Address::repeat_byte(0xfe),
        "baseFeePerGas": "0x3b9aca00", "prevRandao": format!("{:#066x}", 0x5eed), "gasLimit": "0x1c9c380",
        "blockHash": {"99": format!("{:#066x}", 0x99)}
    });
    for (what, data, value) in calls {
        let call = json!({"from": s.address(), "to": MULTICALL3, "data": hex::encode_prefixed(&data), "value": format!("{value:#x}"), "gas": "0x989680"});
        let (c, a) = pair.both("eth_call", json!([call, "latest", {}, block])).await;
        assert_eq!(answer(&c), answer(&a), "{what}\ncairn: {c}\nanvil: {a}");
        // Not the same answer by accident: what must fail fails, the rest succeeds.
        let must_fail = [
            "aggregate with a failure",
            "tryAggregate requiring success",
            "blockAndAggregate with a failure",
            "aggregate3 with a failure",
            "aggregate3Value mismatch",
            "aggregate3Value failure",
            "unknown selector",
        ]
        .contains(&what);
        assert_eq!(c.get("error").is_some(), must_fail, "{what}: {c}");
    }

    // The CREATE2 deployer: same address, same code, and a second deployment fails.
    let mut input = vec![0x42u8; 32];
    input.extend_from_slice(&Artifacts::load_default().expect("artifacts").token_deploy("Salted", "S"));
    let call =
        json!({"from": s.address(), "to": CREATE2_DEPLOYER, "data": hex::encode_prefixed(&input), "gas": "0x2dc6c0"});
    let (c, a) = pair.both("eth_getCode", json!([CREATE2_DEPLOYER, "latest"])).await;
    assert_eq!(c["result"], a["result"], "forge checks the deployer's code byte for byte");
    let (c, a) = pair.both("eth_call", json!([call, "latest"])).await;
    assert_eq!(answer(&c), answer(&a), "create2 call");
    let created: Address = Address::from_slice(&hex::decode(c["result"].as_str().expect("address")).expect("hex"));
    assert_eq!(
        created,
        CREATE2_DEPLOYER.create2(alloy_primitives::B256::repeat_byte(0x42), alloy_primitives::keccak256(&input[32..]))
    );
    let tx =
        f.sign(&s, 2, alloy_primitives::TxKind::Call(CREATE2_DEPLOYER), U256::ZERO, input.clone().into(), 3_000_000);
    let raw = hex::encode_prefixed(alloy_eips::eip2718::Encodable2718::encoded_2718(&tx.expect("sign")));
    for url in [&pair.cairn, &pair.anvil] {
        assert_eq!(pair.send_raw(url, &raw).await["status"], "0x1", "{url}");
    }
    let (c, a) = pair.both("eth_getCode", json!([created, "latest"])).await;
    assert_eq!(c["result"], a["result"]);
    assert!(c["result"].as_str().expect("code").len() > 100);
    let (c, a) = pair.both("eth_call", json!([call, "latest"])).await;
    assert!(c.get("error").is_some() && a.get("error").is_some(), "a second deployment reverts: {c} {a}");
}
