//! Differential tests against anvil (the reference node, Prague rules): the same signed
//! transactions go to a fresh `cairn dev` and a fresh anvil, and every outcome a client
//! can observe must be the same on both.
//!
//! EIP-7702 (the fixtures stop at Cancun): delegate an account to a contract and call
//! through it in the same transaction, call it from another account, re-delegate it
//! with its own type-4 transaction, send authorizations with a stale nonce and with
//! another chain's id (skipped), clear the delegation with a chain-id-0 authorization
//! to the zero address. After each transaction: the receipt (status, gas, logs), and
//! the authority's code, nonce and token balance at `latest`; Cairn's code is also
//! checked at `pending`, at the block before, and after a restart.

mod common;

use alloy_primitives::{hex, Address, U256};
use cairn_primitives::{dev_accounts, TxEnvelope, DEV_MNEMONIC};
use cairn_workload::{authorize, mint_call, token_balance_slot, Artifacts, TxFactory};
use common::{rpc_raw, Anvil, Node, Pair};
use serde_json::{json, Value};

const CHAIN: u64 = 31337;

/// The fields of a receipt both nodes must agree on (block numbers and hashes differ).
fn outcome(r: &Value) -> Value {
    let logs: Vec<Value> = r["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|l| json!({"address": l["address"].as_str().map(str::to_lowercase), "topics": l["topics"], "data": l["data"]}))
        .collect();
    json!({"status": r["status"], "gasUsed": r["gasUsed"], "type": r["type"], "logs": logs, "contractAddress": r["contractAddress"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eip7702_outcomes_match_anvil() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let anvil = Anvil::start(&[]);
    let pair = Pair::new(node.http(), anvil.url.clone());
    let s: Vec<_> = dev_accounts(DEV_MNEMONIC, 3).expect("derive").into_iter().map(|a| a.signer).collect();
    let (sponsor, authority, caller) = (&s[0], &s[1], &s[2]);
    let b = authority.address();
    let f = TxFactory::new(CHAIN);
    let art = Artifacts::load_default().expect("artifacts");
    let plain = Address::repeat_byte(0x11);

    let token = sponsor.address().create(0);
    let other = sponsor.address().create(1);
    let steps: Vec<(&str, TxEnvelope)> = vec![
        ("deploy Token", f.create(sponsor, 0, art.token_deploy("A", "A"), 3_000_000).expect("sign")),
        ("deploy another Token", f.create(sponsor, 1, art.token_deploy("B", "B"), 3_000_000).expect("sign")),
        (
            "delegate and mint through the delegate",
            f.set_code(
                sponsor,
                2,
                b,
                mint_call(b, U256::from(100)),
                vec![authorize(authority, CHAIN, token, 0).expect("auth")],
                300_000,
            )
            .expect("sign"),
        ),
        (
            "call the delegated account",
            f.call(caller, 0, b, mint_call(caller.address(), U256::from(5)), 300_000).expect("sign"),
        ),
        (
            "re-delegate by its own type-4 transaction",
            f.set_code(
                authority,
                1,
                plain,
                Vec::new(),
                vec![authorize(authority, CHAIN, other, 2).expect("auth")],
                300_000,
            )
            .expect("sign"),
        ),
        (
            "stale nonce and foreign chain id: both skipped",
            f.set_code(
                sponsor,
                3,
                plain,
                Vec::new(),
                vec![
                    authorize(authority, CHAIN, token, 0).expect("auth"),
                    authorize(authority, CHAIN + 1, token, 3).expect("auth"),
                ],
                300_000,
            )
            .expect("sign"),
        ),
        (
            "call after the skipped ones",
            f.call(caller, 1, b, mint_call(caller.address(), U256::from(7)), 300_000).expect("sign"),
        ),
        (
            "clear: chain id 0, zero address",
            f.set_code(
                sponsor,
                4,
                plain,
                Vec::new(),
                vec![authorize(authority, 0, Address::ZERO, 3).expect("auth")],
                300_000,
            )
            .expect("sign"),
        ),
        (
            "call the cleared account",
            f.call(caller, 2, b, mint_call(caller.address(), U256::from(9)), 300_000).expect("sign"),
        ),
    ];
    let slot = json!(format!("{:#x}", token_balance_slot(caller.address())));
    let mut codes = Vec::new();
    for (what, tx) in &steps {
        let (c, a) = pair.send(tx).await;
        assert_eq!(outcome(&c), outcome(&a), "{what}: receipts differ\ncairn: {c}\nanvil: {a}");
        for (method, params) in [
            ("eth_getCode", json!([b, "latest"])),
            ("eth_getTransactionCount", json!([b, "latest"])),
            ("eth_getStorageAt", json!([b, slot, "latest"])),
        ] {
            let (cv, av) = pair.both(method, params).await;
            assert_eq!(cv["result"], av["result"], "{what}: {method} differs: {cv} {av}");
        }
        let (code, _) = pair.both("eth_getCode", json!([b, "latest"])).await;
        let pending = rpc_raw(&pair.client, &pair.cairn, "eth_getCode", json!([b, "pending"])).await;
        assert_eq!(pending["result"], code["result"], "{what}: pending code");
        codes.push((c["blockNumber"].clone(), code["result"].clone()));
    }
    let designator = |t: Address| json!(hex::encode_prefixed([&[0xef, 0x01, 0x00][..], t.as_slice()].concat()));
    assert_eq!(codes[2].1, designator(token), "delegated");
    assert_eq!(codes[4].1, designator(other), "re-delegated");
    assert_eq!(codes[5].1, designator(other), "skipped authorizations changed nothing");
    assert_eq!(codes[7].1, json!("0x"), "cleared");

    // History: each block's code as of that block, and the same after a restart.
    let check_history = |url: String| {
        let codes = codes.clone();
        let client = pair.client.clone();
        async move {
            for (number, code) in codes {
                let at = rpc_raw(&client, &url, "eth_getCode", json!([b, number])).await;
                assert_eq!(at["result"], code, "code at block {number}");
            }
        }
    };
    check_history(node.http()).await;
    drop(node);
    let node = Node::start(dir.path(), &[]);
    check_history(node.http()).await;
    let (cv, av) =
        Pair::new(node.http(), anvil.url.clone()).both("eth_getTransactionCount", json!([b, "latest"])).await;
    assert_eq!(cv["result"], av["result"], "after the restart");
}

/// `eth_call` / `eth_estimateGas` state and block overrides (geth's third and fourth
/// parameters) give the same answers as anvil's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_overrides_match_anvil() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let anvil = Anvil::start(&[]);
    let pair = Pair::new(node.http(), anvil.url.clone());
    let s: Vec<_> = dev_accounts(DEV_MNEMONIC, 1).expect("derive").into_iter().map(|a| a.signer).collect();
    let art = Artifacts::load_default().expect("artifacts");
    let token = s[0].address().create(0);
    let (c, a) =
        pair.send(&TxFactory::new(CHAIN).create(&s[0], 0, art.token_deploy("A", "A"), 3_000_000).expect("sign")).await;
    assert_eq!(outcome(&c), outcome(&a));
    let holder = Address::repeat_byte(0x42);
    let balance_of = hex::encode_prefixed(cairn_workload::balance_of_call(holder));
    let slot = format!("{:#066x}", token_balance_slot(holder));
    let word = |v: u64| format!("{:#066x}", v);
    // Code that returns NUMBER, TIMESTAMP, COINBASE, BASEFEE, PREVRANDAO, BLOCKHASH(5).
    let probe = "0x435f524260205241604052486060524460805260054060a05260c05ff3";
    let fresh = Address::repeat_byte(0x77);
    let poor = Address::repeat_byte(0x66);
    let cases: Vec<(&str, &str, Value)> = vec![
        ("no override", "eth_call", json!([{"to": token, "data": balance_of}, "latest"])),
        (
            "stateDiff on the balance slot",
            "eth_call",
            json!([{"to": token, "data": balance_of}, "latest", {token.to_string(): {"stateDiff": {slot.clone(): word(77)}}}]),
        ),
        (
            "state replaces all storage",
            "eth_call",
            json!([{"to": token, "data": hex::encode_prefixed(cairn_workload::balance_of_call(s[0].address()))}, "latest", {token.to_string(): {"state": {slot.clone(): word(5)}}}]),
        ),
        (
            "code at a fresh address",
            "eth_call",
            json!([{"to": fresh, "data": balance_of}, "latest", {fresh.to_string(): {"code": hex::encode_prefixed(&art.token_runtime), "stateDiff": {slot.clone(): word(9)}}}]),
        ),
        (
            "balance lets a poor account send value",
            "eth_call",
            json!([{"from": poor, "to": holder, "value": "0xde0b6b3a7640000"}, "latest", {poor.to_string(): {"balance": "0x1bc16d674ec80000"}}]),
        ),
        (
            "estimate with a stateDiff",
            "eth_estimateGas",
            json!([{"from": holder, "to": token, "data": hex::encode_prefixed(cairn_workload::transfer_call(poor, U256::from(3)))}, "latest", {token.to_string(): {"stateDiff": {slot.clone(): word(10)}}}]),
        ),
        (
            "block overrides",
            "eth_call",
            json!([{"to": fresh}, "latest", {fresh.to_string(): {"code": probe}}, {
                "number": "0xa", "time": "0x6000000", "feeRecipient": Address::repeat_byte(0xfe),
                "baseFeePerGas": "0x7", "prevRandao": format!("{:#066x}", 0x1234),
                "blockHash": {"5": format!("{:#066x}", 0xabcd)}
            }]),
        ),
    ];
    for (what, method, params) in cases {
        let (c, a) = pair.both(method, params).await;
        assert!(c.get("error").is_none(), "{what}: cairn failed: {c}");
        if method == "eth_estimateGas" {
            // A documented difference: Cairn's search stops within 1.5% above the
            // least gas that succeeds, as geth's does; anvil searches to the unit.
            let gas = |v: &Value| u64::from_str_radix(v["result"].as_str().expect("gas").trim_start_matches("0x"), 16);
            let (cg, ag) = (gas(&c).expect("hex"), gas(&a).expect("hex"));
            assert!(cg >= ag && cg * 1000 <= ag * 1015, "{what}: cairn {cg} anvil {ag}");
            continue;
        }
        assert_eq!(c["result"], a["result"], "{what}: cairn {c} anvil {a}");
    }
    // Without the override the same transfer reverts (the holder has no tokens).
    let plain = json!([{"from": holder, "to": token, "data": hex::encode_prefixed(cairn_workload::transfer_call(poor, U256::from(3)))}, "latest"]);
    let (c, a) = pair.both("eth_estimateGas", plain).await;
    assert_eq!((c["error"]["code"].clone(), a["error"]["code"].clone()), (json!(3), json!(3)), "{c} {a}");
    // What cannot be applied is an error, never silently ignored.
    let both =
        json!([{"to": token, "data": balance_of}, "latest", {token.to_string(): {"state": {}, "stateDiff": {}}}]);
    let c = rpc_raw(&pair.client, &pair.cairn, "eth_call", both).await;
    assert_eq!(c["error"]["code"], -32602, "{c}");
    let unknown = json!([{"to": token, "data": balance_of}, "latest", {}, {"withdrawals": []}]);
    let c = rpc_raw(&pair.client, &pair.cairn, "eth_call", unknown).await;
    assert_eq!(c["error"]["code"], -32602, "{c}");
    assert!(c["error"]["message"].as_str().expect("message").contains("withdrawals"), "{c}");
}

/// Where two JSON values first differ (a path and both values), for failure messages.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                first_difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => {
            let short = |v: &Value| v.to_string().chars().take(3000).collect::<String>();
            Some(format!("{path}: cairn {} anvil {}", short(a), short(b)))
        }
    }
}

/// Removes the fields that depend on where a transaction landed (block hash and
/// number), not on what it did.
fn strip_place(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(items) = v.as_array_mut() {
        for t in items {
            if let Some(o) = t.as_object_mut() {
                o.remove("blockHash");
                o.remove("blockNumber");
            }
        }
    }
    v
}

/// The entries of a prestate trace for the accounts whose state does not depend on
/// fees (the contracts): the sender's and the fee recipient's balances differ between
/// two nodes with different base fees and fee recipients.
fn contracts_only(v: &Value, keep: &[Address]) -> Value {
    let pick = |m: &Value| -> Value {
        let map = m.as_object().cloned().unwrap_or_default();
        Value::Object(
            map.into_iter().filter(|(k, _)| keep.iter().any(|a| k.eq_ignore_ascii_case(&a.to_string()))).collect(),
        )
    };
    if v.get("pre").is_some() {
        json!({"pre": pick(&v["pre"]), "post": pick(&v["post"])})
    } else {
        pick(v)
    }
}

/// Traces of the same signed transactions (a DEX flow: deployments, mints, approvals,
/// liquidity, a swap with nested calls, a reverting transfer) agree with anvil's:
/// `callTracer` (with logs), the struct logger, `4byteTracer`, `prestateTracer` (both
/// modes, on the contracts), Parity `trace_transaction`, `debug_traceCall`, and
/// `eth_createAccessList`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_and_access_lists_match_anvil() {
    use cairn_workload::{add_liquidity_call, approve_call, swap_call, transfer_call};
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let anvil = Anvil::start(&["--steps-tracing"]);
    let pair = Pair::new(node.http(), anvil.url.clone());
    let s: Vec<_> = dev_accounts(DEV_MNEMONIC, 2).expect("derive").into_iter().map(|a| a.signer).collect();
    let me = s[0].address();
    let f = TxFactory::new(CHAIN);
    let art = Artifacts::load_default().expect("artifacts");
    let (t0, t1, pool) = (me.create(0), me.create(1), me.create(2));
    let big = U256::from(10u64).pow(U256::from(24));
    let txs = vec![
        f.create(&s[0], 0, art.token_deploy("A", "A"), 3_000_000).expect("sign"),
        f.create(&s[0], 1, art.token_deploy("B", "B"), 3_000_000).expect("sign"),
        f.create(&s[0], 2, art.pair_deploy(t0, t1), 5_000_000).expect("sign"),
        f.call(&s[0], 3, t0, mint_call(me, big), 200_000).expect("sign"),
        f.call(&s[0], 4, t1, mint_call(me, big), 200_000).expect("sign"),
        f.call(&s[0], 5, t0, approve_call(pool, big), 200_000).expect("sign"),
        f.call(&s[0], 6, t1, approve_call(pool, big), 200_000).expect("sign"),
        f.call(&s[0], 7, pool, add_liquidity_call(U256::from(10u128.pow(20)), U256::from(10u128.pow(20))), 500_000)
            .expect("sign"),
        f.call(&s[0], 8, pool, swap_call(true, U256::from(10u64.pow(18)), U256::ZERO, me), 500_000).expect("sign"),
        f.call(&s[1], 0, t0, transfer_call(me, U256::from(1)), 200_000).expect("sign"),
    ];
    let mut hashes = Vec::new();
    for tx in &txs {
        let (c, a) = pair.send(tx).await;
        assert_eq!(outcome(&c), outcome(&a), "receipts differ\ncairn: {c}\nanvil: {a}");
        hashes.push(c["transactionHash"].clone());
    }
    let contracts = [t0, t1, pool];
    let tracers = [
        json!({"tracer": "callTracer", "tracerConfig": {"withLog": true}}),
        json!({"tracer": "callTracer", "tracerConfig": {"onlyTopCall": true}}),
        json!({}),
        json!({"enableMemory": true, "disableStack": true}),
        json!({"tracer": "4byteTracer"}),
        json!({"tracer": "prestateTracer"}),
        json!({"tracer": "prestateTracer", "tracerConfig": {"diffMode": true}}),
    ];
    for (i, hash) in hashes.iter().enumerate() {
        for opts in &tracers {
            let (c, a) = pair.both("debug_traceTransaction", json!([hash, opts])).await;
            assert!(c.get("error").is_none(), "tx {i} {opts}: cairn failed: {c}");
            let (mut cr, mut ar) = (c["result"].clone(), a["result"].clone());
            if opts["tracer"] == "prestateTracer" {
                (cr, ar) = (contracts_only(&cr, &contracts), contracts_only(&ar, &contracts));
            }
            if opts["tracer"] == "callTracer" {
                // A documented difference: the top call's `gas` is the transaction's gas
                // limit in geth (and in revm-inspectors, which Cairn uses); anvil reports
                // it net of the intrinsic gas.
                assert_eq!(cr["gas"], json!(format!("{:#x}", alloy_consensus::Transaction::gas_limit(&txs[i]))));
                cr["gas"] = Value::Null;
                ar["gas"] = Value::Null;
            }
            assert!(cr == ar, "tx {i} {opts}: traces differ at {:?}", first_difference(&cr, &ar, ""));
        }
        let (c, a) = pair.both("trace_transaction", json!([hash])).await;
        assert!(c.get("error").is_none(), "tx {i}: cairn trace_transaction failed: {c}");
        let (cr, ar) = (strip_place(&c["result"]), strip_place(&a["result"]));
        assert!(cr == ar, "tx {i}: trace_transaction differs at {:?}", first_difference(&cr, &ar, ""));
    }
    // A call: traced, and its access list.
    let call = json!({"from": me, "to": pool, "gas": "0xf4240", "data": hex::encode_prefixed(swap_call(false, U256::from(10u64.pow(17)), U256::ZERO, me))});
    let (c, a) = pair.both("debug_traceCall", json!([call, "latest", {"tracer": "callTracer"}])).await;
    assert!(c.get("error").is_none(), "{c}");
    let (mut cr, mut ar) = (c["result"].clone(), a["result"].clone());
    (cr["gas"], ar["gas"]) = (Value::Null, Value::Null);
    assert_eq!(cr, ar, "debug_traceCall differs");
    let (c, a) = pair.both("eth_createAccessList", json!([call, "latest"])).await;
    assert!(c.get("error").is_none(), "{c}");
    // The same entries; Cairn lists them sorted by address (revm-inspectors), anvil in
    // hash-map order, which varies.
    let sorted = |v: &Value| {
        let mut items = v.as_array().cloned().unwrap_or_default();
        items.sort_by_key(|i| i["address"].as_str().map(str::to_lowercase));
        items
    };
    assert_eq!(sorted(&c["result"]["accessList"]), sorted(&a["result"]["accessList"]), "access lists differ: {c} {a}");
    assert_eq!(c["result"]["gasUsed"], a["result"]["gasUsed"], "access list gas differs: {c} {a}");
    assert!(!c["result"]["accessList"].as_array().expect("list").is_empty());
}

/// `eth_simulateV1` on fresh nodes (same genesis accounts): two blocks with state and
/// block overrides, a value transfer from an account that only the overrides fund,
/// calls in the first block whose effects the next block reads, a revert, ETH transfers traced as
/// logs, and validation errors. Each call's status, return data, gas, logs and error,
/// and each block's number, timestamp and gas used, must match anvil's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_v1_matches_anvil() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let anvil = Anvil::start(&[]);
    let pair = Pair::new(node.http(), anvil.url.clone());
    let me = dev_accounts(DEV_MNEMONIC, 1).expect("derive")[0].address;
    let art = Artifacts::load_default().expect("artifacts");
    let poor = Address::repeat_byte(0x61);
    let sink = Address::repeat_byte(0x62);
    // A token on both (anvil cannot simulate a creation: it requires `to`).
    let signer = dev_accounts(DEV_MNEMONIC, 1).expect("derive").remove(0).signer;
    let token = me.create(0);
    let (c, a) = pair
        .send(&TxFactory::new(CHAIN).create(&signer, 0, art.token_deploy("Sim", "S"), 3_000_000).expect("sign"))
        .await;
    assert_eq!(outcome(&c), outcome(&a));
    let mint = hex::encode_prefixed(mint_call(sink, U256::from(9)));
    let bad = "0xdeadbeef";
    let payload = |trace: bool, validation: bool| {
        json!({
            "blockStateCalls": [
                {
                    "blockOverrides": {"time": "0x70000000"},
                    "stateOverrides": {poor.to_string(): {"balance": "0xde0b6b3a7640000"}},
                    "calls": [
                        {"from": poor, "to": sink, "value": "0x2386f26fc10000"},
                        {"from": me, "to": token, "data": mint.clone()}
                    ]
                },
                {
                    "calls": [
                        {"from": me, "to": token, "data": mint},
                        {"from": me, "to": token, "data": bad},
                        {"from": me, "to": token, "data": hex::encode_prefixed(cairn_workload::balance_of_call(sink))}
                    ]
                }
            ],
            "traceTransfers": trace,
            "validation": validation
        })
    };
    for (trace, validation) in [(false, false), (true, false), (false, true)] {
        let (c, a) = pair.both("eth_simulateV1", json!([payload(trace, validation), "latest"])).await;
        assert!(
            c.get("error").is_none() && a.get("error").is_none(),
            "trace {trace} validation {validation}:\ncairn {c}\nanvil {a}"
        );
        let shape = |v: &Value| -> Value {
            v["result"]
                .as_array()
                .expect("blocks")
                .iter()
                .map(|b| {
                    let calls: Vec<Value> = b["calls"]
                        .as_array()
                        .expect("calls")
                        .iter()
                        .map(|c| {
                            let logs: Vec<Value> = c["logs"]
                                .as_array()
                                .expect("logs")
                                .iter()
                                .map(|l| json!([l["address"].as_str().map(str::to_lowercase), l["topics"], l["data"], l["logIndex"]]))
                                .collect();
                            // A documented difference: a reverted call's error code is 3 as the
                            // specification requires (anvil answers -32000); both report one.
                            json!({"status": c["status"], "returnData": c["returnData"], "gasUsed": c["gasUsed"], "logs": logs, "failed": c.get("error").is_some()})
                        })
                        .collect();
                    json!({"timestamp": b["timestamp"], "gasUsed": b["gasUsed"], "calls": calls})
                })
                .collect()
        };
        let (cs, as_) = (shape(&c), shape(&a));
        let reverted = &c["result"][1]["calls"][1];
        assert_eq!(
            (reverted["status"].clone(), reverted["error"]["code"].clone()),
            (json!("0x0"), json!(3)),
            "{reverted}"
        );
        assert!(cs == as_, "trace {trace} validation {validation}: differs at {:?}", first_difference(&cs, &as_, ""));
        // The chain itself is untouched.
        let (bal, _) = pair.both("eth_getBalance", json!([sink, "latest"])).await;
        assert_eq!(bal["result"], "0x0", "nothing committed");
    }
    // Invalid requests, with the specification's codes (anvil 1.7 does not check
    // nonces even with `validation`, so these are checked against the specification):
    // a nonce from the future with validation, then block numbers that do not increase.
    let future =
        json!({"blockStateCalls": [{"calls": [{"from": me, "to": sink, "nonce": "0x9"}]}], "validation": true});
    let c = rpc_raw(&pair.client, &pair.cairn, "eth_simulateV1", json!([future, "latest"])).await;
    assert_eq!(c["error"]["code"], -38011, "nonce too high: {c}");
    let backwards = json!({"blockStateCalls": [
        {"blockOverrides": {"number": "0x50"}, "calls": []},
        {"blockOverrides": {"number": "0x40"}, "calls": []}
    ]});
    let c = rpc_raw(&pair.client, &pair.cairn, "eth_simulateV1", json!([backwards, "latest"])).await;
    assert_eq!(c["error"]["code"], -38020, "numbers must increase: {c}");
}
