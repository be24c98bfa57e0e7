//! A shared set: four real `cairn node` validators ordering two rollups (31338 and
//! 31339) without executing them, and `cairn rollup` followers executing each rollup's
//! part of the decided blocks: two followers of one rollup compute identical blocks and
//! roots; a transaction invalid at execution is `rejected` with the same reason on both;
//! a follower never sees the other rollup's transactions; a follower killed with
//! `kill -9` catches up with no gap; the set goes on without one validator.

mod common;

use common::{rpc, rpc_raw, wait_receipt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROLLUP_A: u64 = 31338;
const ROLLUP_B: u64 = 31339;

/// A running `cairn` process whose log goes to a file; killed on drop.
struct Proc {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
            eprintln!(
                "--- {} ({}):\n{}",
                self.url,
                self.log.display(),
                lines[lines.len().saturating_sub(15)..].join("\n")
            );
        }
    }
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file))
        .spawn()
        .expect("spawn cairn");
    let addr = common::listening_on(&mut child)
        .unwrap_or_else(|| panic!("{args:?} exited: {}", std::fs::read_to_string(log).unwrap_or_default()));
    Proc { child, url: format!("http://{addr}"), log: log.to_path_buf() }
}

/// A base port whose validator JSON-RPC (`P + i`) and P2P (`P + 100 + i`) ports are free.
fn base_port() -> u16 {
    // The tests of this file run at once: each starts its search elsewhere.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let seed = std::process::id() as u16;
    let start = NEXT.fetch_add(53, std::sync::atomic::Ordering::Relaxed);
    (start..start + 200)
        .map(|k| 21_000 + seed.wrapping_mul(17).wrapping_add(k.wrapping_mul(389)) % 24_000)
        .find(|base| {
            (0..4u16).all(|i| {
                std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                    && std::net::TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
            })
        })
        .expect("a free port range")
}

/// `cairn testnet init` of four validators ordering rollups A and B (with `extra` init
/// flags) in `dir/set`, and the four validators started (validator 0 with `first`
/// node flags); returns the set's folder and the running validators.
fn start_set(dir: &Path, extra: &[&str], first: &[&str]) -> (PathBuf, Vec<Option<Proc>>) {
    let out = init_set(dir, extra);
    let validators = start_validators(dir, &out, first);
    (out, validators)
}

/// `cairn testnet init` of four validators ordering rollups A and B in `dir/set`.
fn init_set(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("set");
    let status = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["testnet", "init", "--validators", "4", "--base-port", &base_port().to_string()])
        .args(["--rollups", &format!("{ROLLUP_A},{ROLLUP_B}")])
        .args(extra)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("init");
    assert!(status.success());
    out
}

/// The four validators of the set in `out` started (validator 0 with `first` flags).
fn start_validators(dir: &Path, out: &Path, first: &[&str]) -> Vec<Option<Proc>> {
    (0..4)
        .map(|i| {
            let home = out.join(format!("node-{i}")).to_string_lossy().to_string();
            let mut args = vec!["node", "--home", &home];
            if i == 0 {
                args.extend_from_slice(first);
            }
            Some(spawn(&args, &dir.join(format!("node-{i}.log"))))
        })
        .collect()
}

fn follower(dir: &Path, name: &str, chain: u64, sequencers: &[&str]) -> Proc {
    let data = dir.join(name);
    let log = dir.join(format!("{name}.log"));
    let chain = chain.to_string();
    let urls = sequencers.join(",");
    let args = ["rollup", "--chain-id", &chain, "--sequencer", &urls, "--port", "0", "--datadir"];
    let mut all: Vec<&str> = args.to_vec();
    let data = data.to_string_lossy().to_string();
    all.push(&data);
    spawn(&all, &log)
}

/// ETH transfers of 1 wei to `to` on rollup `chain` from the ten development accounts,
/// nonces `from..to_nonce` each: (hash, raw hex).
fn transfers(chain: u64, nonces: std::ops::Range<u64>, to: alloy_primitives::Address) -> Vec<(Value, String)> {
    use alloy_eips::eip2718::Encodable2718;
    let f = cairn_workload::TxFactory::new(chain);
    let accounts = cairn_primitives::dev_accounts(cairn_primitives::DEV_MNEMONIC, 10).expect("accounts");
    let mut out = Vec::new();
    for nonce in nonces {
        for a in &accounts {
            let tx = f.transfer_eth(&a.signer, nonce, to, alloy_primitives::U256::from(1)).expect("sign");
            out.push((json!(tx.tx_hash()), alloy_primitives::hex::encode_prefixed(tx.encoded_2718())));
        }
    }
    out
}

async fn send(client: &reqwest::Client, url: &str, txs: &[(Value, String)]) {
    for (hash, raw) in txs {
        let r = rpc_raw(client, url, "eth_sendRawTransaction", json!([raw])).await;
        assert_eq!(&r["result"], hash, "{url}: {r}");
    }
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).expect("hex")
}

async fn head(client: &reqwest::Client, url: &str) -> u64 {
    hex_u64(&rpc(client, url, "eth_blockNumber", json!([])).await.expect("block number"))
}

/// Blocks 1..=upto of the two followers: same hash and state root at every height.
async fn same_blocks(client: &reqwest::Client, a: &str, b: &str, upto: u64) {
    for n in 1..=upto {
        let x = rpc(client, a, "eth_getBlockByNumber", json!([format!("{n:#x}"), false])).await.expect("block");
        let y = rpc(client, b, "eth_getBlockByNumber", json!([format!("{n:#x}"), false])).await.expect("block");
        assert_eq!(x["hash"], y["hash"], "block {n} differs: {x} vs {y}");
        assert_eq!(x["stateRoot"], y["stateRoot"], "block {n}");
    }
}

async fn wait_head(client: &reqwest::Client, url: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while head(client, url).await < at_least {
        assert!(Instant::now() < deadline, "{url} did not reach block {at_least}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_rejected(client: &reqwest::Client, url: &str, hash: &Value) -> Value {
    wait_status(client, url, hash, "rejected").await
}

/// Polls `cairn_getTransactionStatus` of `hash` on `url` until it is `status`.
async fn wait_status(client: &reqwest::Client, url: &str, hash: &Value, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = rpc(client, url, "cairn_getTransactionStatus", json!([hash])).await.expect("status");
        if s["status"] == status {
            return s;
        }
        assert!(Instant::now() < deadline, "{hash} not {status} on {url}: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rollups_on_four_validators_followers_agree_and_resume() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, mut validators) = start_set(dir.path(), &[], &[]);
    let v: Vec<String> = validators.iter().flatten().map(|p| p.url.clone()).collect();
    let status = rpc(&client, &v[0], "cairn_sharedStatus", json!([])).await.expect("shared status");
    assert_eq!(status["rollups"].as_array().map(Vec::len), Some(2), "{status}");

    let a1 = follower(dir.path(), "a1", ROLLUP_A, &[&v[0], &v[1]]);
    let mut a2 = follower(dir.path(), "a2", ROLLUP_A, &[&v[2]]);
    let b1 = follower(dir.path(), "b1", ROLLUP_B, &[&v[3]]);
    assert_eq!(rpc(&client, &a1.url, "eth_chainId", json!([])).await.expect("id"), json!("0x7a6a"));

    let to_a = alloy_primitives::Address::repeat_byte(0xa1);
    let to_b = alloy_primitives::Address::repeat_byte(0xb1);
    let txs_a = transfers(ROLLUP_A, 0..3, to_a);
    let txs_b = transfers(ROLLUP_B, 0..2, to_b);
    // Rollup A's through the validators, one each in turn, and through a follower (which
    // forwards them); rollup B's through a validator.
    for (i, tx) in txs_a.iter().enumerate() {
        let url = if i % 5 == 4 { a1.url.clone() } else { v[i % 4].clone() };
        send(&client, &url, std::slice::from_ref(tx)).await;
    }
    send(&client, &v[1], &txs_b).await;
    // Invalid at execution, which a lazy set cannot know: a nonce far ahead, and a sender
    // without funds. The set orders them; every follower rejects them alike.
    let accounts = cairn_primitives::dev_accounts(cairn_primitives::DEV_MNEMONIC, 1).expect("accounts");
    let f = cairn_workload::TxFactory::new(ROLLUP_A);
    let gap = f.transfer_eth(&accounts[0].signer, 1_000, to_a, alloy_primitives::U256::from(1)).expect("sign");
    let poor = alloy_signer_local::PrivateKeySigner::random();
    let broke = f.transfer_eth(&poor, 0, to_a, alloy_primitives::U256::from(1)).expect("sign");
    let mut invalid = Vec::new();
    for tx in [gap, broke] {
        use alloy_eips::eip2718::Encodable2718;
        let raw = alloy_primitives::hex::encode_prefixed(tx.encoded_2718());
        invalid.push((json!(tx.tx_hash()), raw));
    }
    send(&client, &v[2], &invalid).await;
    // The follower checks against its state what it can: a sender without funds is
    // refused at its door, as by any node.
    let refused = rpc_raw(&client, &a1.url, "eth_sendRawTransaction", json!([invalid[1].1])).await;
    assert!(refused["error"]["message"].as_str().unwrap_or("").contains("insufficient funds"), "{refused}");

    for (hash, _) in &txs_a {
        for url in [&a1.url, &a2.url] {
            let receipt = wait_receipt(&client, url, hash, Duration::from_secs(60)).await;
            assert_eq!(receipt["status"], "0x1", "{receipt}");
        }
    }
    for (hash, _) in &txs_b {
        let receipt = wait_receipt(&client, &b1.url, hash, Duration::from_secs(60)).await;
        assert_eq!(receipt["status"], "0x1", "{receipt}");
    }
    // Each rollup sees its own transactions only.
    let balance = |url: String, who| {
        let client = client.clone();
        async move { rpc(&client, &url, "eth_getBalance", json!([who, "latest"])).await.expect("balance") }
    };
    assert_eq!(balance(a1.url.clone(), to_a).await, json!(format!("{:#x}", txs_a.len())));
    assert_eq!(balance(a1.url.clone(), to_b).await, json!("0x0"));
    assert_eq!(balance(b1.url.clone(), to_b).await, json!(format!("{:#x}", txs_b.len())));
    assert_eq!(balance(b1.url.clone(), to_a).await, json!("0x0"));
    // Rejected on both followers of A, for the same reason, at the same height.
    for (hash, _) in &invalid {
        let x = wait_rejected(&client, &a1.url, hash).await;
        let y = wait_rejected(&client, &a2.url, hash).await;
        assert_eq!(x["reason"], y["reason"], "{x} vs {y}");
        assert_eq!(x["blockNumber"], y["blockNumber"], "{x} vs {y}");
        assert!(x["reason"].as_str().is_some_and(|r| !r.is_empty()), "{x}");
    }
    let upto = head(&client, &a1.url).await.min(head(&client, &a2.url).await);
    same_blocks(&client, &a1.url, &a2.url, upto).await;

    // Firm: the set posts its decided blocks to its DA layer; the follower reads its
    // namespace back, checks it against what it executed, and marks it firm; the
    // validator reports the same.
    let last_a = &txs_a[txs_a.len() - 1].0;
    let firm = wait_status(&client, &a1.url, last_a, "firm").await;
    assert!(firm["da"]["height"].as_u64().unwrap_or(0) >= 1, "{firm}");
    // The `finalized` tag names the newest firm block; `latest` may be ahead of it.
    let firm_block = hex_u64(&firm["blockNumber"]);
    let finalized =
        rpc(&client, &a1.url, "eth_getBlockByNumber", json!(["finalized", false])).await.expect("finalized block");
    assert!(hex_u64(&finalized["number"]) >= firm_block, "{finalized}");
    assert!(hex_u64(&finalized["number"]) <= head(&client, &a1.url).await);
    let on_set = wait_status(&client, &v[0], last_a, "firm").await;
    assert_eq!(on_set["da"]["commitment"], firm["da"]["commitment"], "{on_set} vs {firm}");
    // A follower with no decided stream, from the DA layer alone, reaches the same state.
    let c1 = {
        let data = dir.path().join("c1").to_string_lossy().to_string();
        let chain = ROLLUP_A.to_string();
        spawn(
            &["rollup", "--chain-id", &chain, "--sequencer", &v[1], "--from-da", "--port", "0", "--datadir", &data],
            &dir.path().join("c1.log"),
        )
    };
    let at =
        hex_u64(&rpc(&client, &a1.url, "eth_getTransactionByHash", json!([last_a])).await.expect("tx")["blockNumber"]);
    wait_head(&client, &c1.url, at).await;
    same_blocks(&client, &a1.url, &c1.url, at).await;
    drop(c1);

    // kill -9 of a follower; the set goes on (and without one validator too); the
    // follower restarts and catches up with no gap.
    a2.child.kill().expect("kill -9");
    a2.child.wait().expect("wait");
    validators[3] = None;
    let more = transfers(ROLLUP_A, 3..5, to_a);
    send(&client, &v[0], &more).await;
    for (hash, _) in &more {
        wait_receipt(&client, &a1.url, hash, Duration::from_secs(60)).await;
    }
    let a2 = follower(dir.path(), "a2", ROLLUP_A, &[&v[2], &v[1]]);
    let target = head(&client, &a1.url).await;
    wait_head(&client, &a2.url, target).await;
    for (hash, _) in &more {
        let receipt = wait_receipt(&client, &a2.url, hash, Duration::from_secs(60)).await;
        assert_eq!(receipt["status"], "0x1");
    }
    same_blocks(&client, &a1.url, &a2.url, target).await;
    assert_eq!(balance(a2.url.clone(), to_a).await, json!(format!("{:#x}", txs_a.len() + more.len())));

    // The validator killed with kill -9 comes back (its order store, fragment and
    // admission logs reopened), catches up by value sync, and holds the same blocks.
    let home = out.join("node-3").to_string_lossy().to_string();
    validators[3] = Some(spawn(&["node", "--home", &home], &dir.path().join("node-3.log")));
    let height = |url: String| {
        let client = client.clone();
        async move { hex_u64(&rpc(&client, &url, "cairn_sharedStatus", json!([])).await.expect("status")["decidedHeight"]) }
    };
    let target = height(v[0].clone()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while height(v[3].clone()).await < target {
        assert!(Instant::now() < deadline, "validator 3 did not catch up to {target}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for h in [1, target / 2, target] {
        let block = |url: String| {
            let client = client.clone();
            async move {
                rpc(&client, &url, "cairn_getSequencerBlock", json!([format!("{h:#x}")])).await.expect("block")["hash"]
                    .clone()
            }
        };
        assert_eq!(block(v[0].clone()).await, block(v[3].clone()).await, "block {h}");
    }
    for (hash, _) in &more {
        decided_at(&client, &v[3], hash).await;
    }
    drop(validators);
}

/// The decided height of `hash` on the set's node `url`, waiting for it.
async fn decided_at(client: &reqwest::Client, url: &str, hash: &Value) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = rpc(client, url, "cairn_getTransactionStatus", json!([hash])).await.expect("status");
        if s["status"] == "sequenced" || s["status"] == "firm" {
            return hex_u64(&s["height"]);
        }
        assert!(Instant::now() < deadline, "{hash} not decided: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_one_rollup_leaves_the_other_its_share_of_every_block() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    // 3,000 bytes a block: 1,500 for each rollup, about a dozen transfers.
    let (_, validators) = start_set(dir.path(), &["--block-bytes", "3000"], &[]);
    let validators: Vec<Proc> = validators.into_iter().flatten().collect();
    let flood = transfers(ROLLUP_A, 0..30, alloy_primitives::Address::repeat_byte(0xa1));
    send(&client, &validators[0].url, &flood).await;
    let sent_at = hex_u64(
        &rpc(&client, &validators[1].url, "cairn_sharedStatus", json!([])).await.expect("status")["decidedHeight"],
    );
    let fair = transfers(ROLLUP_B, 0..2, alloy_primitives::Address::repeat_byte(0xb1));
    send(&client, &validators[1].url, &fair).await;
    let mut last_fair = 0;
    for (hash, _) in &fair {
        last_fair = last_fair.max(decided_at(&client, &validators[2].url, hash).await);
    }
    let mut last_flood = 0;
    for (hash, _) in &flood {
        last_flood = last_flood.max(decided_at(&client, &validators[2].url, hash).await);
    }
    // 20 transfers of B need two blocks of its share (and a relay hop): they are all in
    // within a few blocks, while the flood of 300 takes ten or more.
    assert!(last_fair <= sent_at + 5, "B's transactions decided by {last_fair}, sent after {sent_at}");
    assert!(last_flood > last_fair + 3, "the flood ended at {last_flood}, B's at {last_fair}");
    // No block gave B less than it asked for while the flood took more than its share.
    for h in sent_at + 1..=last_fair {
        let b = rpc(&client, &validators[2].url, "cairn_getSequencerBlock", json!([format!("{h:#x}")]))
            .await
            .expect("block");
        let raws: Vec<String> = serde_json::from_value(b["transactions"].clone()).expect("raws");
        let bytes: usize = raws.iter().map(|r| (r.len() - 2) / 2).sum();
        assert!(bytes <= 3000 || raws.len() == 1, "block {h} holds {bytes} bytes");
    }
}

/// The signer of the signed fragment in an answer (the proposer that promised it).
fn fragment_signer(answer: &Value) -> alloy_primitives::Address {
    let f: cairn_primitives::SignedFragment = serde_json::from_value(answer["fragment"].clone()).expect("fragment");
    f.signer().expect("signature")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_across_two_rollups_are_included_whole_even_when_their_proposer_is_killed() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, mut validators) = start_set(dir.path(), &[], &[]);
    let mut addresses = Vec::new();
    for v in validators.iter().flatten() {
        let s = rpc(&client, &v.url, "cairn_sharedStatus", json!([])).await.expect("status");
        addresses.push(serde_json::from_value::<alloy_primitives::Address>(s["validator"].clone()).expect("address"));
    }
    let accounts = cairn_primitives::dev_accounts(cairn_primitives::DEV_MNEMONIC, 10).expect("accounts");
    let (fa, fb) = (cairn_workload::TxFactory::new(ROLLUP_A), cairn_workload::TxFactory::new(ROLLUP_B));
    let to = alloy_primitives::Address::repeat_byte(0xbb);
    let mut promised: Vec<(Vec<Value>, u64, Vec<u64>)> = Vec::new();
    let mut killed = None;
    for trial in 0..24u64 {
        use alloy_eips::eip2718::Encodable2718;
        let signer = &accounts[(trial % 10) as usize].signer;
        let nonce = trial / 10;
        let parts = [
            fa.transfer_eth(signer, nonce, to, alloy_primitives::U256::from(1)).expect("a"),
            fb.transfer_eth(signer, nonce, to, alloy_primitives::U256::from(1)).expect("b"),
        ];
        let raws: Vec<String> =
            parts.iter().map(|t| alloy_primitives::hex::encode_prefixed(t.encoded_2718())).collect();
        let live: Vec<&Proc> = validators.iter().flatten().collect();
        let url = live[trial as usize % live.len()].url.clone();
        let answer = rpc_raw(&client, &url, "cairn_sendBundle", json!([{"txs": raws}, 10_000])).await;
        let answer = answer.get("result").cloned().unwrap_or_else(|| panic!("trial {trial}: {answer}"));
        let height = hex_u64(&answer["height"]);
        let positions: Vec<u64> =
            answer["transactions"].as_array().expect("parts").iter().map(|t| hex_u64(&t["position"])).collect();
        assert_eq!(positions.len(), 2, "{answer}");
        assert_eq!(positions[1], positions[0] + 1, "one part after the other: {answer}");
        promised.push((parts.iter().map(|t| json!(t.tx_hash())).collect(), height, positions));
        // Half-way, the proposer that just promised a bundle is killed, mid-block.
        if trial == 12 && answer["status"] == "preconfirmed" {
            let signer = fragment_signer(&answer);
            let i = addresses.iter().position(|a| *a == signer).expect("a validator signed");
            validators[i] = None;
            killed = Some(i);
        }
    }
    let live: Vec<String> = validators.iter().flatten().map(|p| p.url.clone()).collect();
    // Every bundle is decided whole, at the height and positions it was promised.
    for (hashes, height, positions) in &promised {
        let mut got = Vec::new();
        for h in hashes {
            got.push(decided_at_place(&client, &live[0], h).await);
        }
        assert_eq!(got[0].0, got[1].0, "both parts in one block: {hashes:?} {got:?}");
        assert_eq!((got[0].0, got[0].1, got[1].1), (*height, positions[0], positions[1]), "as promised: {hashes:?}");
    }
    // The set's nodes agree on the blocks.
    let top = promised.iter().map(|p| p.1).max().expect("bundles");
    for h in 1..=top {
        let mut seen = Vec::new();
        for url in &live {
            let b = rpc(&client, url, "cairn_getSequencerBlock", json!([format!("{h:#x}")])).await.expect("block");
            seen.push(b["hash"].clone());
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "block {h}: {seen:?}");
    }
    eprintln!("killed validator: {killed:?}");
}

/// `(height, position)` at which `hash` was decided, as the set's node `url` says.
async fn decided_at_place(client: &reqwest::Client, url: &str, hash: &Value) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = rpc(client, url, "cairn_getTransactionStatus", json!([hash])).await.expect("status");
        if s["status"] == "sequenced" || s["status"] == "firm" {
            return (hex_u64(&s["height"]), hex_u64(&s["position"]));
        }
        assert!(Instant::now() < deadline, "{hash} not decided: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `cairn_sendBundle` of `txs` on `url`, waiting at most `timeout_ms`: the whole
/// response (`result` or `error`).
async fn send_bundle(
    client: &reqwest::Client,
    url: &str,
    txs: &[cairn_primitives::TxEnvelope],
    timeout_ms: u64,
) -> Value {
    use alloy_eips::eip2718::Encodable2718;
    let raws: Vec<String> = txs.iter().map(|t| alloy_primitives::hex::encode_prefixed(t.encoded_2718())).collect();
    rpc_raw(client, url, "cairn_sendBundle", json!([{"txs": raws}, timeout_ms])).await
}

/// A receipt's commitment as a fragment's `receiptsHash` takes it: keccak256 of its
/// EIP-2718 encoding.
fn receipt_leaf(receipt: &Value) -> alloy_primitives::B256 {
    use alloy_eips::eip2718::Encodable2718;
    let r: alloy_rpc_types_eth::TransactionReceipt = serde_json::from_value(receipt.clone()).expect("receipt");
    let envelope = r.inner.map_logs(|l| l.inner);
    alloy_primitives::keccak256(envelope.encoded_2718())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_on_a_validator_that_executes_both_rollups_are_revert_protected() {
    use alloy_eips::eip2718::Encodable2718;
    use alloy_primitives::U256;
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let executes = format!("{ROLLUP_A},{ROLLUP_B}");
    let (out, mut validators) = start_set(dir.path(), &[], &["--execute", &executes]);
    let urls: Vec<String> = validators.iter().flatten().map(|p| p.url.clone()).collect();
    let a1 = follower(dir.path(), "a1", ROLLUP_A, &[&urls[1], &urls[2]]);
    let b1 = follower(dir.path(), "b1", ROLLUP_B, &[&urls[2], &urls[3]]);
    let accounts = cairn_primitives::dev_accounts(cairn_primitives::DEV_MNEMONIC, 10).expect("accounts");
    let (fa, fb) = (cairn_workload::TxFactory::new(ROLLUP_A), cairn_workload::TxFactory::new(ROLLUP_B));
    let raw = |t: &cairn_primitives::TxEnvelope| alloy_primitives::hex::encode_prefixed(t.encoded_2718());
    // A token on each rollup (same deployer and nonce: same address), sent the usual way.
    let artifacts = cairn_workload::Artifacts::load_default().expect("artifacts");
    let deployer = &accounts[0].signer;
    let token = deployer.address().create(0);
    for (f, follower) in [(&fa, &a1), (&fb, &b1)] {
        let tx = f.create(deployer, 0, artifacts.token_deploy("T", "T"), 2_000_000).expect("deploy");
        send(&client, &urls[1], &[(json!(tx.tx_hash()), raw(&tx))]).await;
        let r = wait_receipt(&client, &follower.url, &json!(tx.tx_hash()), Duration::from_secs(60)).await;
        assert_eq!(r["status"], "0x1", "{r}");
    }
    let mint = |f: &cairn_workload::TxFactory, k: usize, nonce: u64, amount: u64| {
        let to = accounts[k].signer.address();
        f.call(&accounts[k].signer, nonce, token, cairn_workload::mint_call(to, U256::from(amount)), 200_000)
            .expect("mint")
    };
    // Bundles that succeed: a mint on each rollup, answered with every part's receipt.
    let mut executed = Vec::new();
    for k in 1..=5usize {
        let parts = [mint(&fa, k, 0, 100 + k as u64), mint(&fb, k, 0, 200 + k as u64)];
        let answer = send_bundle(&client, &urls[0], parts.as_slice(), 20_000).await;
        let answer = answer.get("result").cloned().unwrap_or_else(|| panic!("bundle {k}: {answer}"));
        assert_eq!(answer["executed"], true, "{answer}");
        let got: Vec<Value> = answer["transactions"].as_array().expect("parts").clone();
        assert_eq!(got.len(), 2, "{answer}");
        for (part, tx) in got.iter().zip(&parts) {
            assert_eq!(part["hash"], json!(tx.tx_hash()), "parts in block order (A, then B): {answer}");
            assert_eq!(part["receipt"]["status"], "0x1", "{answer}");
            assert_eq!(part["receipt"]["logs"].as_array().map(Vec::len), Some(1), "a Transfer log: {answer}");
        }
        executed.push(answer);
    }
    // Bundles that cannot all succeed are never included: a part that reverts (a
    // transfer of tokens the sender does not have), a part with a nonce gap.
    let reverting = [
        mint(&fa, 6, 0, 1),
        fb.call(&accounts[6].signer, 0, token, cairn_workload::transfer_call(token, U256::from(5)), 200_000)
            .expect("transfer"),
    ];
    let gap = [mint(&fa, 7, 0, 1), mint(&fb, 7, 3, 1)];
    for (parts, why) in [(&reverting, "reverted"), (&gap, "cannot be included")] {
        let answer = send_bundle(&client, &urls[0], parts.as_slice(), 20_000).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(why) && message.contains("dropped"), "{why}: {answer}");
    }
    // The same accounts' nonce 0 on A is still free: a later transaction with it is
    // included (sent the usual way, to another validator).
    let later = [mint(&fa, 6, 0, 9), mint(&fa, 7, 0, 9)];
    send(&client, &urls[2], &later.iter().map(|t| (json!(t.tx_hash()), raw(t))).collect::<Vec<_>>()).await;
    for t in &later {
        let r = wait_receipt(&client, &a1.url, &json!(t.tx_hash()), Duration::from_secs(60)).await;
        assert_eq!(r["status"], "0x1", "{r}");
    }
    for (t, url) in [(&reverting[0], &a1.url), (&reverting[1], &b1.url), (&gap[0], &a1.url), (&gap[1], &b1.url)] {
        let r = rpc_raw(&client, url, "eth_getTransactionReceipt", json!([t.tx_hash()])).await;
        assert!(r["result"].is_null(), "a part of a dropped bundle was included: {r}");
    }
    // A bundle sent to a follower is passed through to the set (here to validator 1,
    // which does not execute: an inclusion preconfirmation) and both parts execute.
    let through = [mint(&fa, 9, 0, 9), mint(&fb, 9, 0, 9)];
    let answer = send_bundle(&client, &a1.url, through.as_slice(), 20_000).await;
    let answer = answer.get("result").cloned().unwrap_or_else(|| panic!("through a follower: {answer}"));
    assert_eq!(answer["status"], "preconfirmed", "{answer}");
    assert!(answer.get("executed").is_none(), "validator 1 does not execute: {answer}");
    for (t, url) in [(&through[0], &a1.url), (&through[1], &b1.url)] {
        let r = wait_receipt(&client, url, &json!(t.tx_hash()), Duration::from_secs(60)).await;
        assert_eq!(hex_u64(&r["blockNumber"]), hex_u64(&answer["height"]), "{r}");
    }
    // The executing validator is killed with `kill -9` and restarted: its rollups'
    // chains catch up with the decided blocks, and it protects bundles again.
    validators[0] = None;
    let home = out.join("node-0").to_string_lossy().to_string();
    let restarted = spawn(&["node", "--home", &home, "--execute", &executes], &dir.path().join("node-0.restarted.log"));
    let parts = [mint(&fa, 8, 0, 8), mint(&fb, 8, 0, 8)];
    let answer = send_bundle(&client, &restarted.url, parts.as_slice(), 30_000).await;
    let answer = answer.get("result").cloned().unwrap_or_else(|| panic!("after the restart: {answer}"));
    assert_eq!(answer["executed"], true, "{answer}");
    executed.push(answer);
    // The followers of each rollup find what the executing validator promised: the
    // same receipts, in the promised block, and the signed fragment's receipts
    // commitment recomputed from the followers' receipts.
    for answer in &executed {
        let height = hex_u64(&answer["height"]);
        let mut leaves = Vec::new();
        for part in answer["transactions"].as_array().expect("parts") {
            let url = if hex_u64(&part["namespace"]) == ROLLUP_A { &a1.url } else { &b1.url };
            let r = wait_receipt(&client, url, &part["hash"], Duration::from_secs(60)).await;
            assert_eq!(hex_u64(&r["blockNumber"]), height, "{r}");
            for field in ["status", "gasUsed", "cumulativeGasUsed", "from", "effectiveGasPrice"] {
                assert_eq!(r[field], part["receipt"][field], "{field}: {r} vs {part}");
            }
            let logs = r["logs"].as_array().expect("logs");
            let promised = part["receipt"]["logs"].as_array().expect("logs");
            assert_eq!(logs.len(), promised.len());
            for (l, p) in logs.iter().zip(promised) {
                for field in ["address", "topics", "data", "logIndex"] {
                    assert_eq!(l[field], p[field], "log {field}: {l} vs {p}");
                }
            }
            leaves.push(receipt_leaf(&r));
        }
        let fragment: cairn_primitives::SignedFragment =
            serde_json::from_value(answer["fragment"].clone()).expect("fragment");
        assert_eq!(fragment.fragment.receipts_hash, cairn_primitives::fragment::hash_list(&leaves), "{answer}");
        assert_eq!(fragment.fragment.height, height);
    }
}

/// Anvil's development accounts 1 to 4: validator `i` pays for its batches with key `i`.
const L1_KEYS: [&str; 4] = [
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_set_posts_to_an_ethereum_l1_and_its_follower_finds_blocks_firm_there() {
    let client = reqwest::Client::new();
    let anvil = common::Anvil::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = init_set(dir.path(), &[]);
    // Each validator's home names the L1 in its `[da]` table, with its own paying key
    // (in a file for validator 0, inline for the others).
    for (i, key) in L1_KEYS.iter().enumerate() {
        let home = out.join(format!("node-{i}"));
        let key = if i == 0 {
            std::fs::write(home.join("l1.key"), key).expect("key file");
            "l1.key".to_string()
        } else {
            key.to_string()
        };
        let table = format!("\n[da]\nlayer = \"ethereum\"\nl1-rpc = \"{}\"\nl1-key = \"{key}\"\n", anvil.url);
        let mut config = std::fs::read_to_string(home.join("config.toml")).expect("config");
        config.push_str(&table);
        std::fs::write(home.join("config.toml"), config).expect("config");
    }
    let validators = start_validators(dir.path(), &out, &[]);
    let urls: Vec<String> = validators.iter().flatten().map(|p| p.url.clone()).collect();
    let a1 = follower(dir.path(), "a1", ROLLUP_A, &[&urls[1], &urls[2]]);
    let txs = transfers(ROLLUP_A, 0..1, alloy_primitives::Address::repeat_byte(0x61));
    send(&client, &urls[0], &txs).await;
    for (hash, _) in &txs {
        let r = wait_receipt(&client, &a1.url, hash, Duration::from_secs(60)).await;
        assert_eq!(r["status"], "0x1", "{r}");
    }
    // Firm on the follower, from batches on the L1 (read through the validators).
    let firm = wait_status(&client, &a1.url, &txs[0].0, "firm").await;
    assert_eq!(firm["da"]["backend"], "ethereum", "{firm}");
    for url in &urls {
        let da = rpc(&client, url, "cairn_daStatus", json!([])).await.expect("DA status");
        assert_eq!(da["backend"], "ethereum", "{url}: {da}");
    }
    // Every validator posted with its own account: blob transactions on the L1.
    for key in L1_KEYS {
        let signer: alloy_signer_local::PrivateKeySigner = key.parse().expect("key");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = rpc(&client, &anvil.url, "eth_getTransactionCount", json!([signer.address(), "latest"]))
                .await
                .expect("nonce");
            if hex_u64(&n) > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{} posted nothing to the L1", signer.address());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Polls `cairn_getEvidence` of every node in `urls` until each keeps a `conflict`
/// record against `signer`, sending `keep_busy`'s transactions meanwhile; the records.
async fn wait_evidence(
    client: &reqwest::Client,
    urls: &[String],
    signer: alloy_primitives::Address,
    conflict: &str,
    mut keep_busy: impl FnMut() -> Option<(Value, String)>,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let signer = signer.to_string().to_lowercase();
    loop {
        let mut found = Vec::new();
        for url in urls {
            let list = rpc(client, url, "cairn_getEvidence", json!([])).await.unwrap_or(json!([]));
            let record = list.as_array().into_iter().flatten().find(|e| {
                e["conflict"] == conflict && e["signer"].as_str().map(str::to_lowercase).as_deref() == Some(&signer)
            });
            found.extend(record.cloned());
        }
        if found.len() == urls.len() {
            return found;
        }
        assert!(Instant::now() < deadline, "{} of {urls:?} keep {conflict} evidence against {signer}", found.len());
        if let Some((_, raw)) = keep_busy() {
            let _ = rpc_raw(client, &urls[0], "eth_sendRawTransaction", json!([raw])).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_validator_that_equivocates_is_recorded_by_every_honest_one_and_evidence_is_gossiped() {
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    // Validator 0 streams two different signed fragments for the first position of
    // each block it proposes.
    let (out, validators) = start_set(dir.path(), &[], &["--fault", "equivocate"]);
    let urls: Vec<String> = validators.iter().flatten().map(|p| p.url.clone()).collect();
    let mut addresses = Vec::new();
    for url in &urls {
        let s = rpc(&client, url, "cairn_sharedStatus", json!([])).await.expect("status");
        addresses.push(serde_json::from_value::<alloy_primitives::Address>(s["validator"].clone()).expect("address"));
    }
    let honest = urls[1..].to_vec();
    let mut txs = transfers(ROLLUP_A, 0..20, alloy_primitives::Address::repeat_byte(0x47)).into_iter();
    let found = wait_evidence(&client, &honest, addresses[0], "samePosition", || txs.next()).await;
    for e in &found {
        assert_eq!(e["fragments"].as_array().map(Vec::len), Some(2), "{e}");
        assert_eq!(e["chainId"], 31337, "fragments of the set's chain: {e}");
    }

    // A double vote handed to one validator reaches the others; evidence against a
    // key outside the set is refused.
    let key: alloy_signer_local::PrivateKeySigner =
        std::fs::read_to_string(out.join("node-2/validator.key")).expect("key").trim().parse().expect("key");
    let outsider = alloy_signer_local::PrivateKeySigner::random();
    let double = |key| common::double_vote(key, 31337);
    let refused = rpc_raw(&client, &urls[1], "cairn_submitEvidence", json!([double(&outsider)])).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let kept = rpc_raw(&client, &urls[1], "cairn_submitEvidence", json!([double(&key)])).await;
    assert_eq!(kept["result"]["conflict"], "doubleVote", "{kept}");
    let gossiped = wait_evidence(&client, &urls, addresses[2], "doubleVote", || None).await;
    for e in &gossiped {
        assert_eq!(e["id"], kept["result"]["id"], "{e}");
    }
}
