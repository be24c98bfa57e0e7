//! `cairn dev`'s unlocked accounts and test controls, over JSON-RPC against the real
//! binary: `eth_accounts`, `eth_sendTransaction` with only `from`/`to`/`value`,
//! `eth_signTransaction`, `eth_sign` / `personal_sign` / `eth_signTypedData_v4` checked
//! by recovering the signer, `evm_mine`, `anvil_mine`, `evm_increaseTime`,
//! `evm_setNextBlockTimestamp` (the clock survives a restart), and the refusals
//! (`evm_snapshot`, an account without a key); state edits and impersonation, side by
//! side with anvil.

mod common;

use alloy_primitives::{Address, Bytes, Signature, B256};
use cairn_primitives::{dev_accounts, DEV_MNEMONIC};
use common::{rpc_raw, Anvil, Node, Pair};
use serde_json::{json, Value};

async fn ok(client: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
    let r = rpc_raw(client, url, method, params).await;
    assert!(r.get("error").is_none(), "{method}: {r}");
    r["result"].clone()
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex").trim_start_matches("0x"), 16).expect("hex number")
}

async fn latest_timestamp(client: &reqwest::Client, url: &str) -> (u64, u64) {
    let b = ok(client, url, "eth_getBlockByNumber", json!(["latest", false])).await;
    (hex_u64(&b["number"]), hex_u64(&b["timestamp"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlocked_accounts_sign_send_and_control_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let (client, url) = (reqwest::Client::new(), node.http());
    let accounts: Vec<Address> = dev_accounts(DEV_MNEMONIC, 10).expect("derive").iter().map(|a| a.address).collect();
    let listed: Vec<Address> =
        serde_json::from_value(ok(&client, &url, "eth_accounts", json!([])).await).expect("list");
    assert_eq!(listed, accounts);
    let (me, to) = (accounts[0], accounts[1]);

    // Send with nothing but from/to/value: nonce, fees and gas are filled in.
    let hash = ok(&client, &url, "eth_sendTransaction", json!([{"from": me, "to": to, "value": "0x3e8"}])).await;
    // Polled as clients do: `null` while pooled; once preconfirmed, the call itself
    // waits for the seal.
    let receipt = common::wait_receipt(&client, &url, &hash, std::time::Duration::from_secs(60)).await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    assert_eq!(receipt["from"].as_str().map(str::to_lowercase), Some(format!("{me:?}").to_lowercase()));
    let raw = ok(&client, &url, "eth_signTransaction", json!([{"from": me, "to": to, "value": "0x1"}])).await;
    let raw: Bytes = serde_json::from_value(raw).expect("raw");
    let tx = <cairn_primitives::TxEnvelope as alloy_eips::eip2718::Decodable2718>::decode_2718(&mut raw.as_ref())
        .expect("a signed transaction");
    assert_eq!(alloy_consensus::transaction::SignerRecoverable::recover_signer(&tx).expect("recover"), me);
    assert_eq!(alloy_consensus::Transaction::nonce(&tx), 1, "the pending nonce");
    let stranger = Address::repeat_byte(0x99);
    let r = rpc_raw(&client, &url, "eth_sendTransaction", json!([{"from": stranger, "to": to}])).await;
    assert!(r["error"]["message"].as_str().expect("message").contains("unknown account"), "{r}");

    // Messages and typed data, checked by recovering the signer.
    let message = b"hello cairn";
    for (method, params) in [
        ("eth_sign", json!([me, alloy_primitives::hex::encode_prefixed(message)])),
        ("personal_sign", json!([alloy_primitives::hex::encode_prefixed(message), me])),
    ] {
        let sig: Bytes = serde_json::from_value(ok(&client, &url, method, params).await).expect("sig");
        let sig = Signature::try_from(sig.as_ref()).expect("65 bytes");
        assert_eq!(sig.recover_address_from_msg(message).expect("recover"), me, "{method}");
    }
    let typed = json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Mail": [{"name": "to", "type": "address"}, {"name": "contents", "type": "string"}]
        },
        "primaryType": "Mail",
        "domain": {"name": "Cairn", "chainId": 31337},
        "message": {"to": to, "contents": "hi"}
    });
    let sig: Bytes =
        serde_json::from_value(ok(&client, &url, "eth_signTypedData_v4", json!([me, typed.clone()])).await)
            .expect("sig");
    let parsed: alloy_dyn_abi::TypedData = serde_json::from_value(typed).expect("typed data");
    let digest: B256 = parsed.eip712_signing_hash().expect("hash");
    let sig = Signature::try_from(sig.as_ref()).expect("65 bytes");
    assert_eq!(sig.recover_address_from_prehash(&digest).expect("recover"), me);

    // Mining and time.
    let (n0, t0) = latest_timestamp(&client, &url).await;
    assert_eq!(ok(&client, &url, "evm_mine", json!([])).await, "0x0");
    let (n1, _) = latest_timestamp(&client, &url).await;
    assert!(n1 > n0, "evm_mine sealed a block");
    let total = ok(&client, &url, "evm_increaseTime", json!([3600])).await;
    assert!(hex_u64(&total) >= 3600, "{total}");
    ok(&client, &url, "evm_mine", json!([])).await;
    let (_, t2) = latest_timestamp(&client, &url).await;
    assert!(t2 >= t0 + 3600, "the mined block is an hour later: {t0} -> {t2}");
    let target = t2 + 86_400;
    ok(&client, &url, "evm_setNextBlockTimestamp", json!([format!("{target:#x}")])).await;
    ok(&client, &url, "evm_mine", json!([])).await;
    let (n3, t3) = latest_timestamp(&client, &url).await;
    assert_eq!(t3, target, "the next block has the requested timestamp");
    ok(&client, &url, "anvil_mine", json!(["0x3"])).await;
    let (n4, t4) = latest_timestamp(&client, &url).await;
    assert_eq!(n4, n3 + 3, "anvil_mine closed three blocks");
    assert!(t4 >= target);
    let r = rpc_raw(&client, &url, "evm_setNextBlockTimestamp", json!([t0])).await;
    assert!(r["error"]["message"].as_str().expect("message").contains("lower than or equal"), "{r}");
    let r = rpc_raw(&client, &url, "evm_snapshot", json!([])).await;
    assert!(r["error"]["message"].as_str().expect("message").contains("never rewrites a sealed block"), "{r}");

    // The clock is part of the chain's durable state: after a restart, new blocks go
    // on from the moved time, not from the wall clock.
    drop(node);
    let node = Node::start(dir.path(), &[]);
    let url = node.http();
    ok(&client, &url, "evm_mine", json!([])).await;
    let (_, t5) = latest_timestamp(&client, &url).await;
    assert!(t5 >= target, "clock kept across the restart: {t5} < {target}");
}

/// Bad requests get JSON-RPC errors that name what is wrong, never debug text, and the
/// node keeps answering (`docs/RPC.md`, the error table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let post = |body: &'static str| {
        let (client, url) = (client.clone(), node.http());
        async move {
            let resp =
                client.post(url).header("content-type", "application/json").body(body).send().await.expect("send");
            resp.json::<Value>().await.expect("a JSON-RPC answer")
        }
    };
    let cases: [(&str, i64, &str); 6] = [
        ("hello", -32700, "Parse error"),
        (r#"{"foo":1}"#, -32700, "Parse error"),
        ("[]", -32600, "Invalid request"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xzzzz","latest"]}"#,
            -32602,
            "invalid argument 0 (address): ",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getTransactionByHash","params":["0x1234"]}"#,
            -32602,
            "invalid argument 0 (transaction hash): ",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":[]}"#,
            -32602,
            "missing value for required argument 0",
        ),
    ];
    for (body, code, message) in cases {
        let r = post(body).await;
        assert_eq!(r["error"]["code"], code, "{body}: {r}");
        let m = r["error"]["message"].as_str().expect("message");
        assert!(m.starts_with(message), "{body}: {m}");
        assert!(!m.contains("ErrorObject") && !m.contains("RawValue"), "{body}: {m}");
    }
    let r = post(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#).await;
    assert_eq!(r["result"], "0x7a69", "still answering");
    // eth_blobBaseFee agrees with eth_feeHistory's baseFeePerBlobGas.
    let blob = post(r#"{"jsonrpc":"2.0","id":1,"method":"eth_blobBaseFee","params":[]}"#).await;
    let history = post(r#"{"jsonrpc":"2.0","id":1,"method":"eth_feeHistory","params":["0x1","latest"]}"#).await;
    assert_eq!(history["result"]["baseFeePerBlobGas"][0], blob["result"], "{history} {blob}");
}

/// A call that must succeed on both nodes, with both answers.
async fn both_ok(pair: &Pair, method: &str, params: Value) -> (Value, Value) {
    let (c, a) = pair.both(method, params).await;
    assert!(c.get("error").is_none(), "cairn {method}: {c}");
    assert!(a.get("error").is_none(), "anvil {method}: {a}");
    (c["result"].clone(), a["result"].clone())
}

/// `eth_sendTransaction` on both, and both receipts once there.
async fn send_both(pair: &Pair, tx: Value) -> (Value, Value) {
    let (c, a) = both_ok(pair, "eth_sendTransaction", json!([tx])).await;
    let within = std::time::Duration::from_secs(60);
    let c = common::wait_receipt(&pair.client, &pair.cairn, &c, within).await;
    let a = common::wait_receipt(&pair.client, &pair.anvil, &a, within).await;
    (c, a)
}

/// `anvil_setBalance` / `setNonce` / `setCode` / `setStorageAt` and impersonation give
/// what anvil gives on the same calls: the edited account as read back (balance, nonce,
/// code, storage, a call into the new code), transactions sent from an impersonated
/// account (an EOA without a key, and a contract), stopping and automatic
/// impersonation. Each edit is a block of its own: the block before it still shows the
/// old state, and everything survives a restart. Cairn refuses to lower a nonce
/// (anvil allows it: documented difference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_edits_and_impersonation_match_anvil() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(dir.path(), &[]);
    let anvil = Anvil::start(&[]);
    let pair = Pair::new(node.http(), anvil.url.clone());
    let (x, y, z) = (Address::repeat_byte(0x71), Address::repeat_byte(0x72), Address::repeat_byte(0x73));
    let c = Address::repeat_byte(0x7c);
    // Runtime code that answers 42 and, called with value, keeps it.
    let code = "0x602a5f5260205ff3";
    let (number_before, _) = latest_timestamp(&pair.client, &pair.cairn).await;

    let (cb, ab) = both_ok(&pair, "anvil_setBalance", json!([x, "0x56bc75e2d63100000"])).await;
    assert_eq!((cb.clone(), ab), (Value::Null, Value::Null));
    both_ok(&pair, "anvil_setNonce", json!([x, "0x5"])).await;
    both_ok(&pair, "anvil_setCode", json!([c, code])).await;
    let slot_value = format!("0x{:064x}", 9);
    let (cs, as_) = both_ok(&pair, "anvil_setStorageAt", json!([c, "0x1", slot_value])).await;
    assert_eq!((cs, as_), (Value::Bool(true), Value::Bool(true)));
    for (method, params) in [
        ("eth_getBalance", json!([x, "latest"])),
        ("eth_getTransactionCount", json!([x, "latest"])),
        ("eth_getCode", json!([c, "latest"])),
        ("eth_getStorageAt", json!([c, "0x1", "latest"])),
        ("eth_call", json!([{"to": c}, "latest"])),
    ] {
        let (cr, ar) = both_ok(&pair, method, params).await;
        assert_eq!(cr, ar, "{method}");
    }
    // The block before the edits is untouched.
    let before = format!("{number_before:#x}");
    let old = ok(&pair.client, &pair.cairn, "eth_getBalance", json!([x, before])).await;
    assert_eq!(old, "0x0", "edits never rewrite a sealed block");

    // Impersonation: an EOA whose key nobody has, and a contract (EIP-3607 is off).
    for (method, params) in [("anvil_impersonateAccount", json!([x])), ("anvil_impersonateAccount", json!([c]))] {
        let (cr, ar) = both_ok(&pair, method, params).await;
        assert_eq!((cr, ar), (Value::Null, Value::Null));
    }
    both_ok(&pair, "anvil_setBalance", json!([c, "0xde0b6b3a7640000"])).await;
    for (from, value) in [(x, "0x3e8"), (c, "0x7")] {
        let (cr, ar) = send_both(&pair, json!({"from": from, "to": y, "value": value})).await;
        for key in ["status", "from", "to", "gasUsed", "type"] {
            assert_eq!(cr[key], ar[key], "{key} of a transaction from {from}: {cr} / {ar}");
        }
        assert_eq!(cr["status"], "0x1");
    }
    for (method, params) in [
        ("eth_getBalance", json!([y, "latest"])),
        ("eth_getTransactionCount", json!([x, "latest"])),
        ("eth_getTransactionCount", json!([c, "latest"])),
    ] {
        let (cr, ar) = both_ok(&pair, method, params).await;
        assert_eq!(cr, ar, "{method}");
    }
    both_ok(&pair, "anvil_stopImpersonatingAccount", json!([x])).await;
    let (cr, ar) = pair.both("eth_sendTransaction", json!([{"from": x, "to": y, "value": "0x1"}])).await;
    assert!(cr.get("error").is_some() && ar.get("error").is_some(), "no longer impersonated: {cr} / {ar}");
    // Automatic impersonation: any account.
    both_ok(&pair, "anvil_setBalance", json!([z, "0xde0b6b3a7640000"])).await;
    both_ok(&pair, "anvil_autoImpersonateAccount", json!([true])).await;
    let (cr, ar) = send_both(&pair, json!({"from": z, "to": y, "value": "0x5"})).await;
    assert_eq!((cr["status"].clone(), cr["from"].clone()), (ar["status"].clone(), ar["from"].clone()));
    both_ok(&pair, "anvil_autoImpersonateAccount", json!([false])).await;
    let (cr, ar) = both_ok(&pair, "eth_getBalance", json!([y, "latest"])).await;
    assert_eq!(cr, ar);
    assert_eq!(cr, "0x3f4", "1000 + 7 + 5 wei");

    // hardhat's names answer true; a nonce is never lowered on Cairn.
    let r = ok(&pair.client, &pair.cairn, "hardhat_setBalance", json!([z, "0x1"])).await;
    assert_eq!(r, Value::Bool(true));
    let r = rpc_raw(&pair.client, &pair.cairn, "anvil_setNonce", json!([x, "0x1"])).await;
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot be lowered"), "{r}");
    let r = rpc_raw(&pair.client, &pair.cairn, "anvil_setStorageAt", json!([c, "0x1", "0x09"])).await;
    assert_eq!(r["error"]["code"], -32602, "the value is 32 bytes: {r}");

    // Durable: the same state after a restart.
    drop(node);
    let node = Node::start(dir.path(), &[]);
    let pair = Pair::new(node.http(), anvil.url.clone());
    for (method, params) in [
        ("eth_getCode", json!([c, "latest"])),
        ("eth_getStorageAt", json!([c, "0x1", "latest"])),
        ("eth_getTransactionCount", json!([x, "latest"])),
        ("eth_getBalance", json!([y, "latest"])),
    ] {
        let (cr, ar) = both_ok(&pair, method, params).await;
        assert_eq!(cr, ar, "{method} after a restart");
    }
}
