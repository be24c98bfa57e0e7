//! The Prague system contracts of `cairn dev`'s default genesis against the canonical
//! ones: Cairn's own EIP-2935 history contract and EIP-4788 beacon-roots contract
//! (`contracts/BlockHashHistory.sol`, `contracts/BeaconRoots.sol`) and the block-start
//! writes that fill them.
//!
//! - The code: on anvil, the canonical contracts (anvil's built-in EIP-2935 one; the
//!   EIP-4788 one deployed from its public presigned deployment transaction,
//!   `fixtures/canonical/beacon-roots.tx`) and Cairn's (by `anvil_setCode`) side by side
//!   on one chain: the system address's writes (impersonated) and every kind of read
//!   (in range, out of range, malformed, with value) must give the same storage and the
//!   same answers.
//! - The writes: the same probe transaction reads, inside its block, the parent's hash
//!   from the history contract (on Cairn and on anvil) and its own timestamp from the
//!   beacon-roots contract (Cairn; anvil does not make the EIP-4788 call): they must
//!   equal `BLOCKHASH` and the header. Reads relative to each node's latest block
//!   succeed or revert alike. A trace of the probe replays the system writes (its log
//!   is the receipt's), also after a restart.

mod common;

use alloy_primitives::{Address, B256, U256};
use cairn_primitives::predeploys::{BEACON_ROOTS, HISTORY_STORAGE};
use cairn_primitives::{dev_accounts, DEV_MNEMONIC};
use cairn_workload::TxFactory;
use common::{rpc_raw, Anvil, Node, Pair};
use serde_json::{json, Value};
use std::path::Path;

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex").trim_start_matches("0x"), 16).expect("hex number")
}

/// The answer of a call, reduced to what must agree: reverted, or the returned word.
fn outcome(v: &Value) -> Result<String, ()> {
    match v.get("error") {
        Some(_) => Err(()),
        None => Ok(v["result"].as_str().expect("data").to_string()),
    }
}

async fn block(pair: &Pair, url: &str, number: u64) -> Value {
    rpc_raw(&pair.client, url, "eth_getBlockByNumber", json!([format!("{number:#x}"), false])).await["result"].clone()
}

fn word(n: u64) -> String {
    format!("0x{n:064x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_contracts_behave_as_the_canonical_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let anvil = Anvil::start(&[]);
    let pair = Pair::new(node.http(), anvil.url.clone());
    // The canonical EIP-4788 contract on anvil, from its presigned deployment.
    let deployer = "0x0B799C86a49DEeb90402691F1041aa3AF2d3C875";
    rpc_raw(&pair.client, &pair.anvil, "anvil_setBalance", json!([deployer, "0xde0b6b3a7640000"])).await;
    let presigned =
        std::fs::read_to_string(root().join("crates/node/tests/fixtures/canonical/beacon-roots.tx")).expect("fixture");
    let receipt = pair.send_raw(&pair.anvil, presigned.trim()).await;
    assert_eq!(
        receipt["contractAddress"].as_str().map(str::to_lowercase),
        Some(format!("{BEACON_ROOTS:?}").to_lowercase())
    );
    for url in [&pair.cairn, &pair.anvil] {
        for address in [HISTORY_STORAGE, BEACON_ROOTS] {
            let code = rpc_raw(&pair.client, url, "eth_getCode", json!([address, "latest"])).await;
            assert!(code["result"].as_str().expect("code").len() > 50, "{url}: no code at {address}");
        }
    }
    // Some history on both.
    let signer = dev_accounts(DEV_MNEMONIC, 1).expect("derive").remove(0).signer;
    let f = TxFactory::new(31337);
    for nonce in 0..3 {
        pair.send(&f.transfer_eth(&signer, nonce, Address::repeat_byte(0x21), U256::from(1)).expect("sign")).await;
    }
    // The probe, on both.
    let probe = Address::repeat_byte(0x9b);
    let code = alloy_primitives::hex::encode_prefixed(cairn_workload::system_probe_code());
    let (c, a) = pair.both("anvil_setCode", json!([probe, code])).await;
    assert!(c.get("error").is_none() && a.get("error").is_none(), "{c} {a}");
    let tx = f.call(&signer, 3, probe, Vec::new(), 200_000).expect("sign");
    let (cr, ar) = pair.send(&tx).await;
    for (url, receipt) in [(&pair.cairn, &cr), (&pair.anvil, &ar)] {
        assert_eq!(receipt["status"], "0x1", "{url}: {receipt}");
        let data: alloy_primitives::Bytes =
            serde_json::from_value(receipt["logs"][0]["data"].clone()).expect("log data");
        let w = |i: usize| B256::from_slice(&data[32 * i..32 * i + 32]);
        let number = hex_u64(&receipt["blockNumber"]);
        let parent = block(&pair, url, number - 1).await;
        let own = block(&pair, url, number).await;
        assert_eq!(U256::from_be_bytes(w(0).0), U256::from(number - 1), "{url}");
        assert_eq!(format!("{:?}", w(1)), parent["hash"].as_str().expect("hash"), "{url}: the history contract");
        assert_eq!(w(1), w(2), "{url}: as BLOCKHASH");
        assert_eq!(U256::from_be_bytes(w(3).0), U256::from(hex_u64(&own["timestamp"])), "{url}");
        if url == &pair.cairn {
            assert_eq!(
                U256::from_be_bytes(w(4).0),
                U256::from(1),
                "the beacon-roots contract knows the block's timestamp"
            );
        }
    }

    // Calls relative to each node's own latest block.
    let latest = |url: String| {
        let client = pair.client.clone();
        async move {
            let b = rpc_raw(&client, &url, "eth_getBlockByNumber", json!(["latest", false])).await["result"].clone();
            (hex_u64(&b["number"]), hex_u64(&b["timestamp"]))
        }
    };
    let ((cn, cts), (an, ats)) = (latest(pair.cairn.clone()).await, latest(pair.anvil.clone()).await);
    for (url, n, ts) in [(&pair.cairn, cn, cts), (&pair.anvil, an, ats)] {
        // History: the block before latest answers its hash.
        let r = rpc_raw(&pair.client, url, "eth_call", json!([{"to": HISTORY_STORAGE, "data": word(n - 1)}, "latest"]))
            .await;
        let parent = block(&pair, url, n - 1).await;
        assert_eq!(r["result"], parent["hash"], "{url}: {r}");
        if url == &pair.cairn {
            // Beacon roots: the latest block's timestamp answers its parent beacon root.
            let r =
                rpc_raw(&pair.client, url, "eth_call", json!([{"to": BEACON_ROOTS, "data": word(ts)}, "latest"])).await;
            let own = block(&pair, url, n).await;
            assert_eq!(r["result"], own["parentBeaconBlockRoot"], "{url}: {r}");
        }
    }
    let history_cases: Vec<Box<dyn Fn(u64) -> String>> = vec![
        Box::new(word),
        Box::new(|n| word(n + 1)),
        Box::new(|n| word(n - 1)),
        Box::new(|n| word(n.saturating_sub(2))),
        Box::new(|n| word(n + 8191)),
        Box::new(|_| word(u64::MAX)),
        Box::new(|_| "0x01".into()),
        Box::new(|_| "0x".into()),
        Box::new(|n| format!("{}00", word(n - 1))),
    ];
    let from = signer.address();
    for (i, data) in history_cases.iter().enumerate() {
        for value in ["0x0", "0x5"] {
            let call =
                |n: u64| json!([{"from": from, "to": HISTORY_STORAGE, "data": data(n), "value": value}, "latest"]);
            let c = rpc_raw(&pair.client, &pair.cairn, "eth_call", call(cn)).await;
            let a = rpc_raw(&pair.client, &pair.anvil, "eth_call", call(an)).await;
            assert_eq!(
                outcome(&c).is_ok(),
                outcome(&a).is_ok(),
                "history case {i}, value {value}: cairn {c} / anvil {a}"
            );
        }
    }
    let _ = (cts, ats);

    // The code, side by side on anvil: canonical at the canonical addresses, Cairn's at
    // two others. Writes by the system address, then reads.
    let (ours_beacon, ours_history) = (Address::repeat_byte(0xb4), Address::repeat_byte(0xb5));
    for (address, code) in [
        (ours_beacon, cairn_primitives::predeploys::beacon_roots_code()),
        (ours_history, cairn_primitives::predeploys::block_hash_history_code()),
    ] {
        let r = rpc_raw(&pair.client, &pair.anvil, "anvil_setCode", json!([address, code])).await;
        assert!(r.get("error").is_none(), "{r}");
    }
    let system = cairn_primitives::predeploys::SYSTEM_ADDRESS;
    for (method, params) in
        [("anvil_impersonateAccount", json!([system])), ("anvil_setBalance", json!([system, "0xde0b6b3a7640000"]))]
    {
        let r = rpc_raw(&pair.client, &pair.anvil, method, params).await;
        assert!(r.get("error").is_none(), "{r}");
    }
    let root = B256::repeat_byte(0x4d);
    for (canonical, ours) in [(BEACON_ROOTS, ours_beacon), (HISTORY_STORAGE, ours_history)] {
        // The same write into both, in one block each; then the same storage.
        let mut written = Vec::new();
        for to in [canonical, ours] {
            let sent = rpc_raw(
                &pair.client,
                &pair.anvil,
                "eth_sendTransaction",
                json!([{"from": system, "to": to, "data": root, "gas": "0x30000"}]),
            )
            .await;
            let receipt =
                common::wait_receipt(&pair.client, &pair.anvil, &sent["result"], std::time::Duration::from_secs(30))
                    .await;
            assert_eq!(receipt["status"], "0x1", "{receipt}");
            let b = block(&pair, &pair.anvil, hex_u64(&receipt["blockNumber"])).await;
            written.push((hex_u64(&b["number"]), hex_u64(&b["timestamp"])));
        }
        let slots = |n: u64, ts: u64| -> Vec<u64> {
            match canonical == BEACON_ROOTS {
                true => vec![ts % 8191, ts % 8191 + 8191],
                false => vec![(n - 1) % 8191],
            }
        };
        for (k, to) in [canonical, ours].into_iter().enumerate() {
            let (n, ts) = written[k];
            for slot in slots(n, ts) {
                let v =
                    rpc_raw(&pair.client, &pair.anvil, "eth_getStorageAt", json!([to, format!("{slot:#x}"), "latest"]))
                        .await;
                let expected = match (canonical == BEACON_ROOTS, slot == ts % 8191) {
                    (true, true) => word(ts),
                    _ => format!("{root:?}"),
                };
                assert_eq!(v["result"], expected.as_str(), "{to} slot {slot} after the system write");
            }
        }
        // Reads: identical answers from both codes (each has the write of its own
        // block; reads name that block's number or timestamp, and others).
        let (n0, ts0) = written[0];
        let (n1, ts1) = written[1];
        let (latest_n, _) = latest(pair.anvil.clone()).await;
        let inputs: Vec<(String, String)> = match canonical == BEACON_ROOTS {
            true => vec![
                (word(ts0), word(ts1)),
                (word(0), word(0)),
                (word(ts0 + 1), word(ts1 + 1)),
                (word(ts0 + 8191), word(ts1 + 8191)),
                ("0x".into(), "0x".into()),
                (format!("{}00", word(ts0)), format!("{}00", word(ts1))),
                ("0x01".into(), "0x01".into()),
            ],
            false => vec![
                (word(n0 - 1), word(n1 - 1)),
                (word(latest_n), word(latest_n)),
                (word(latest_n + 1), word(latest_n + 1)),
                (word(u64::MAX), word(u64::MAX)),
                ("0x".into(), "0x".into()),
                (format!("{}00", word(n0 - 1)), format!("{}00", word(n1 - 1))),
            ],
        };
        for (i, (a_in, b_in)) in inputs.iter().enumerate() {
            for value in ["0x0", "0x7"] {
                let call = |to: Address, data: &String| json!([{"from": from, "to": to, "data": data, "value": value}, "latest"]);
                let a = rpc_raw(&pair.client, &pair.anvil, "eth_call", call(canonical, a_in)).await;
                let b = rpc_raw(&pair.client, &pair.anvil, "eth_call", call(ours, b_in)).await;
                assert_eq!(outcome(&a), outcome(&b), "{canonical} read {i} (value {value}): canonical {a} / ours {b}");
            }
        }
    }

    // A trace replays the block with its system writes: the probe's logged words are
    // the receipt's, before and after a restart.
    let trace_log = |url: String| {
        let client = pair.client.clone();
        let hash = cr["transactionHash"].clone();
        async move {
            let opts = json!({"tracer": "callTracer", "tracerConfig": {"withLog": true}});
            let t = rpc_raw(&client, &url, "debug_traceTransaction", json!([hash, opts])).await;
            t["result"]["logs"][0]["data"].clone()
        }
    };
    assert_eq!(trace_log(pair.cairn.clone()).await, cr["logs"][0]["data"]);
    drop(node);
    let node = Node::start(dir.path(), &[]);
    assert_eq!(trace_log(node.http()).await, cr["logs"][0]["data"], "after a restart");
}
