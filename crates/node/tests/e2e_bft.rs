//! A validator set of four real `cairn node` processes on 127.0.0.1 (Malachite BFT):
//! transactions sent to different validators end up in blocks every node decided the
//! same way (same hashes, same state roots, commit certificates of a quorum); a
//! validator killed with `kill -9` leaves the others deciding and catches up when it is
//! back; with two of four down nothing is decided and nothing forks, and the chain
//! resumes when one returns.

mod common;

use common::{rpc, rpc_raw};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VALIDATORS: usize = 4;

/// A base port `P` such that `P + i` (JSON-RPC) and `P + 100 + i` (P2P) are free now.
fn free_base_port() -> u16 {
    // Tests of this file run at once: each takes another range.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let seed = std::process::id() as u16;
    loop {
        let attempt = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(attempt < 200, "no free port range");
        let base = 20_000 + (seed.wrapping_mul(31).wrapping_add(attempt.wrapping_mul(211))) % 25_000;
        // The validators' ports, and one full node's after them.
        let ports = (0..=VALIDATORS as u16).flat_map(|i| [base + i, base + 100 + i]);
        let listeners: Vec<_> = ports.map(|p| std::net::TcpListener::bind(("127.0.0.1", p))).collect();
        if listeners.iter().all(Result::is_ok) {
            return base;
        }
    }
}

struct Set {
    dir: tempfile::TempDir,
    homes: Vec<PathBuf>,
    nodes: Vec<Option<Child>>,
    urls: Vec<String>,
    /// A command a node is started under (`ip netns exec NS`), per node.
    wrap: Vec<Vec<String>>,
    base: u16,
}

impl Set {
    fn init() -> Set {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("set");
        let base = free_base_port();
        let status = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["testnet", "init", "--validators", &VALIDATORS.to_string(), "--base-port", &base.to_string()])
            .args(["--full-nodes", "1"])
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run init");
        assert!(status.success());
        // Nodes 0..VALIDATORS are the validators; the last one is a full node.
        let mut homes: Vec<PathBuf> = (0..VALIDATORS).map(|i| out.join(format!("node-{i}"))).collect();
        homes.push(out.join("full-0"));
        let urls = (0..=VALIDATORS).map(|i| format!("http://127.0.0.1:{}", base + i as u16)).collect();
        let wrap = (0..=VALIDATORS).map(|_| Vec::new()).collect();
        Set { dir, homes, nodes: (0..=VALIDATORS).map(|_| None).collect(), urls, wrap, base }
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}.log"))
    }

    /// Starts validator `i`; returns once it serves JSON-RPC.
    fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    /// [`Set::start`] with more arguments for `cairn node`.
    fn start_with(&mut self, i: usize, extra: &[&str]) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log(i)).expect("log");
        let mut command = match self.wrap[i].split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_cairn"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_cairn")),
        };
        let mut child = command
            .arg("node")
            .arg("--home")
            .arg(&self.homes[i])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn");
        let addr = common::listening_on(&mut child).unwrap_or_else(|| panic!("node {i} exited: {}", self.tail(i)));
        assert_eq!(format!("http://{addr}"), self.urls[i]);
        self.nodes[i] = Some(child);
    }

    /// `kill -9` of validator `i`.
    fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].take().expect("running");
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        assert!(!status.success());
    }

    /// The end of validator `i`'s log, without the network's reconnection noise.
    /// Sends `signal` (SIGSTOP, SIGCONT) to validator `i`.
    fn signal(&self, i: usize, signal: i32) {
        let child = self.nodes[i].as_ref().expect("running");
        #[allow(unsafe_code)]
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
        let rc = unsafe { libc::kill(child.id() as i32, signal) };
        assert_eq!(rc, 0);
    }

    fn tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.log(i)).unwrap_or_default();
        let lines: Vec<&str> =
            text.lines().filter(|l| !l.contains("arc_malachitebft_network") && !l.starts_with(" - ")).collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The warnings and errors every node logged (for a failure's message).
    fn warnings(&self) -> String {
        let mut out = String::new();
        for i in 0..=VALIDATORS {
            let text = std::fs::read_to_string(self.log(i)).unwrap_or_default();
            for line in text.lines().filter(|l| {
                l.contains("cairn_")
                    && (l.contains("WARN") || l.contains("ERROR") || l.contains("extending") || l.contains("again"))
            }) {
                out.push_str(&format!("node {i}: {line}\n"));
            }
        }
        out
    }

    fn running(&self) -> Vec<usize> {
        (0..=VALIDATORS).filter(|i| self.nodes[*i].is_some()).collect()
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failed test leaves its nodes' logs behind, in the system's temp directory.
        if std::thread::panicking() {
            let keep = std::env::temp_dir().join(format!("cairn-e2e-bft-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&keep);
            for i in 0..=VALIDATORS {
                let _ = std::fs::copy(self.log(i), keep.join(format!("node-{i}.log")));
            }
            eprintln!("the nodes' logs are in {}", keep.display());
        }
    }
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).expect("hex quantity")
}

async fn height(client: &reqwest::Client, url: &str) -> Option<u64> {
    rpc(client, url, "eth_blockNumber", json!([])).await.map(|v| hex_u64(&v))
}

/// The highest block any of `nodes` has sealed (nodes seal at their own pace, behind
/// the set's decisions).
async fn top(client: &reqwest::Client, set: &Set, nodes: &[usize]) -> u64 {
    let mut best = 0;
    for i in nodes {
        best = best.max(height(client, &set.urls[*i]).await.unwrap_or(0));
    }
    best
}

/// Polls until every node of `nodes` is at `target` or above (at most `within`).
async fn wait_height(client: &reqwest::Client, set: &Set, nodes: &[usize], target: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut all = true;
        for i in nodes {
            if height(client, &set.urls[*i]).await.unwrap_or(0) < target {
                all = false;
            }
        }
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nodes {nodes:?} did not reach block {target} within {within:?}: {}",
            set.tail(nodes[0])
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every node of `nodes` has the same blocks 1..=`upto` (hash, state root) and the same
/// sequencer blocks, each with a commit certificate of at least three validators.
async fn same_chain(client: &reqwest::Client, set: &Set, nodes: &[usize], upto: u64) -> usize {
    let mut txs = 0;
    for n in 1..=upto {
        let mut seen: Option<(Value, Value, Value)> = None;
        for i in nodes {
            let url = &set.urls[*i];
            let b = rpc(client, url, "eth_getBlockByNumber", json!([format!("{n:#x}"), false])).await.expect("block");
            let s = rpc(client, url, "cairn_getSequencerBlock", json!([format!("{n:#x}")])).await.expect("seq block");
            assert_eq!(s["certificate"]["kind"], "commit", "block {n} on node {i}: {s}");
            let signers = s["certificate"]["signatures"].as_array().map(Vec::len).unwrap_or(0);
            assert!(signers >= 3, "block {n} on node {i} decided by {signers} validators");
            let this = (b["hash"].clone(), b["stateRoot"].clone(), s["hash"].clone());
            match &seen {
                None => {
                    txs += b["transactions"].as_array().map(Vec::len).unwrap_or(0);
                    seen = Some(this);
                }
                Some(first) => assert_eq!(&this, first, "block {n}: node {i} differs from node {}", nodes[0]),
            }
        }
    }
    txs
}

/// Sends `count` transfers from the development accounts, transaction `k` to validator
/// `to[k % len]`; returns their hashes once each has a receipt on `check`.
async fn send_spread(
    client: &reqwest::Client,
    set: &Set,
    txs: &[(alloy_primitives::B256, String)],
    to: &[usize],
    check: usize,
) {
    let mut hashes = Vec::new();
    for (k, (hash, raw)) in txs.iter().enumerate() {
        let url = &set.urls[to[k % to.len()]];
        let sent = rpc_raw(client, url, "eth_sendRawTransaction", json!([raw])).await;
        assert_eq!(sent["result"], json!(hash), "{url}: {sent}");
        hashes.push(sent["result"].clone());
    }
    for h in &hashes {
        let receipt = common::wait_receipt(client, &set.urls[check], h, Duration::from_secs(60)).await;
        assert_eq!(receipt["status"], "0x1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_decide_the_same_blocks_and_a_killed_one_catches_up() {
    let client = reqwest::Client::new();
    let mut set = Set::init();
    for i in 0..VALIDATORS {
        set.start(i);
    }
    wait_height(&client, &set, &[0, 1, 2, 3], 2, Duration::from_secs(60)).await;

    // Two nonces from each of ten accounts, spread over all four validators: an
    // account's second transaction often reaches another validator than its first.
    let to = alloy_primitives::Address::repeat_byte(0x42);
    let txs = common::dev_transfers(4, to);
    send_spread(&client, &set, &txs[..20], &[0, 1, 2, 3], 0).await;

    // kill -9 of one validator: the other three go on deciding, with its transactions
    // sent to them.
    set.kill(3);
    let at_kill = height(&client, &set.urls[0]).await.expect("height");
    send_spread(&client, &set, &txs[20..], &[0, 1, 2], 1).await;
    wait_height(&client, &set, &[0, 1, 2], at_kill + 8, Duration::from_secs(60)).await;

    // Back: it catches up (value sync) and serves the same blocks.
    set.start(3);
    let now = top(&client, &set, &[0, 1, 2]).await;
    wait_height(&client, &set, &[0, 1, 2, 3], now + 2, Duration::from_secs(60)).await;
    let upto = now + 2;
    let included = same_chain(&client, &set, &[0, 1, 2, 3], upto).await;
    assert_eq!(included, txs.len(), "every transaction is in exactly one decided block");
    let balance = rpc(&client, &set.urls[3], "eth_getBalance", json!([to, "latest"])).await.expect("balance");
    assert_eq!(hex_u64(&balance), txs.len() as u64, "the restarted node has the state");
    // Blocks were proposed by every validator in turn.
    let mut proposers = std::collections::BTreeSet::new();
    for n in 1..=upto {
        let s = rpc(&client, &set.urls[0], "cairn_getSequencerBlock", json!([format!("{n:#x}")])).await.expect("seq");
        proposers.insert(s["proposer"].as_str().expect("proposer").to_string());
    }
    assert_eq!(proposers.len(), VALIDATORS, "{proposers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_nothing_is_decided_and_the_chain_resumes() {
    let client = reqwest::Client::new();
    let mut set = Set::init();
    for i in 0..VALIDATORS {
        set.start(i);
    }
    wait_height(&client, &set, &[0, 1, 2, 3], 3, Duration::from_secs(60)).await;
    set.kill(2);
    set.kill(3);
    // A decision already under way may still complete; after that, two of four (half
    // the voting power, not more than two thirds) decide nothing.
    let settle = Instant::now() + Duration::from_secs(3);
    let mut stalled = 0;
    while Instant::now() < settle {
        stalled = height(&client, &set.urls[0]).await.expect("height").max(stalled);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let watch = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch {
        for i in [0, 1] {
            let h = height(&client, &set.urls[i]).await.expect("height");
            assert!(h <= stalled, "node {i} decided block {h} without a quorum (stalled at {stalled})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No fork: the two agree on everything they decided.
    let low = height(&client, &set.urls[1]).await.expect("height").min(stalled);
    same_chain(&client, &set, &[0, 1], low).await;

    // One returns: three of four decide again.
    set.start(2);
    wait_height(&client, &set, &[0, 1, 2], stalled + 3, Duration::from_secs(90)).await;
    let to = alloy_primitives::Address::repeat_byte(0x43);
    let txs = common::dev_transfers(1, to);
    send_spread(&client, &set, &txs, &[0, 1, 2], 2).await;
    let upto = height(&client, &set.urls[2]).await.expect("height");
    wait_height(&client, &set, &[0, 1, 2], upto, Duration::from_secs(60)).await;
    assert_eq!(same_chain(&client, &set, &[0, 1, 2], upto).await, txs.len());
    assert_eq!(set.running(), vec![0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testnet_run_starts_a_set_and_stops_it_on_ctrl_c() {
    use std::io::BufRead;
    let client = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_base_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["testnet", "run", "--validators", "4", "--base-port", &base.to_string(), "--dir"])
        .arg(dir.path().join("set"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut urls = Vec::new();
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            urls.push(url.to_string());
        }
        if line.starts_with("All 4 validators are running") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(urls.len(), 4, "{urls:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in &urls {
        while height(&client, url).await.unwrap_or(0) < 2 {
            assert!(Instant::now() < deadline, "{url} decides no block");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Ctrl-C: every validator stops, then the command.
    #[allow(unsafe_code)]
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    for url in &urls {
        assert!(height(&client, url).await.is_none(), "{url} still answers");
    }
}

/// The sequencer block proposer of `height`, round 0 (validators take turns by
/// address; each has power 1).
async fn set_addresses(client: &reqwest::Client, set: &Set) -> Vec<String> {
    let genesis: Value =
        serde_json::from_slice(&std::fs::read(set.homes[0].join("genesis.json")).expect("genesis")).expect("json");
    let mut out = Vec::new();
    for i in 0..VALIDATORS {
        let cfg = std::fs::read_to_string(set.homes[i].join("validator.key")).expect("key");
        let key: alloy_signer_local::PrivateKeySigner = cfg.trim().parse().expect("key");
        out.push(format!("{:#x}", key.address()));
    }
    assert_eq!(genesis["validators"].as_array().map(Vec::len), Some(VALIDATORS));
    let _ = client;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_proposer_mid_block_keeps_every_preconfirmation() {
    use alloy_eips::eip2718::Encodable2718;
    const TRIALS: usize = 8;
    let client = reqwest::Client::new();
    let mut set = Set::init();
    // One-second blocks: a preconfirmation, the wait for another validator to hold its
    // fragment and the kill all fit well inside the block.
    for home in &set.homes {
        let path = home.join("config.toml");
        let config = std::fs::read_to_string(&path).expect("config");
        assert!(config.contains("block_time_ms = 200"), "{config}");
        std::fs::write(&path, config.replace("block_time_ms = 200", "block_time_ms = 1000")).expect("write");
    }
    let mut finished_by_another = 0;
    for i in 0..VALIDATORS {
        set.start(i);
    }
    wait_height(&client, &set, &[0, 1, 2, 3], 2, Duration::from_secs(60)).await;
    let addresses = set_addresses(&client, &set).await;
    let signers: Vec<_> = cairn_primitives::dev_accounts(cairn_primitives::DEV_MNEMONIC, 10)
        .expect("derive")
        .into_iter()
        .map(|a| a.signer)
        .collect();
    let factory = cairn_workload::TxFactory::new(31337);
    let to = alloy_primitives::Address::repeat_byte(0x44);
    let mut kept = 0;
    for (trial, signer) in signers.iter().enumerate().take(TRIALS) {
        // A client sends a transaction to one validator (relayed to the others) and
        // waits for its preconfirmation; the proposer that gave it is the victim.
        let entry = trial % VALIDATORS;
        let tx = factory.transfer_eth(signer, 0, to, alloy_primitives::U256::from(1)).expect("sign");
        let raw = alloy_primitives::hex::encode_prefixed(tx.encoded_2718());
        let answer =
            rpc_raw(&client, &set.urls[entry], "cairn_sendRawTransactionPreconfirmed", json!([raw, 20_000])).await;
        let p = answer["result"].clone();
        if p.is_null() {
            let mut seen = String::new();
            for (i, url) in set.urls.iter().enumerate().take(VALIDATORS) {
                let status = rpc_raw(&client, url, "cairn_getTransactionStatus", json!([tx.tx_hash()])).await;
                let nonce =
                    rpc_raw(&client, url, "eth_getTransactionCount", json!([signer.address(), "pending"])).await;
                seen.push_str(&format!("node {i}: status {status}, pending nonce {nonce}\n"));
            }
            panic!("trial {trial}: no preconfirmation from validator {entry}: {answer}\n{seen}{}", set.warnings());
        }
        let sequencer = p["sequencer"].as_str().expect("sequencer").to_lowercase();
        let victim = addresses.iter().position(|a| *a == sequencer).expect("a validator signed it");
        let survivors: Vec<usize> = (0..VALIDATORS).filter(|i| *i != victim).collect();
        let promises =
            vec![(p["transactionHash"].clone(), hex_u64(&p["blockNumber"]), hex_u64(&p["transactionIndex"]))];
        // The guarantee covers a fragment that reached a validator that stays up: wait
        // until one of the others holds it (they execute fragments as they stream in),
        // then kill -9 the proposer in the middle of its block (a block lasts 200 ms).
        let hash = p["transactionHash"].clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        'held: loop {
            for i in &survivors {
                let s = rpc(&client, &set.urls[*i], "cairn_getTransactionStatus", json!([hash])).await;
                if s.is_some_and(|s| s["status"] == "preconfirmed") {
                    break 'held;
                }
            }
            assert!(Instant::now() < deadline, "trial {trial}: no other validator received the fragment");
            tokio::task::yield_now().await;
        }
        set.kill(victim);
        let height_promised = promises.iter().map(|p| p.1).max().expect("promises");
        wait_height(&client, &set, &survivors, height_promised, Duration::from_secs(60)).await;
        for (hash, number, index) in &promises {
            for i in &survivors {
                let r = rpc(&client, &set.urls[*i], "eth_getTransactionReceipt", json!([hash])).await;
                let r = r.unwrap_or_else(|| panic!("trial {trial}: {hash} not decided on node {i}"));
                assert_eq!(
                    (hex_u64(&r["blockNumber"]), hex_u64(&r["transactionIndex"])),
                    (*number, *index),
                    "trial {trial}: {hash} was promised block {number} position {index} by validator {victim}; node {i} has {r}\n{}",
                    set.warnings()
                );
            }
            kept += 1;
        }
        // Was the victim's block finished by another proposer (killed before its last
        // part went out), or had it already sent it all?
        let seq =
            rpc(&client, &set.urls[survivors[0]], "cairn_getSequencerBlock", json!([format!("{height_promised:#x}")]))
                .await
                .expect("sequencer block");
        if seq["proposer"].as_str().map(str::to_lowercase) != Some(addresses[victim].clone()) {
            finished_by_another += 1;
        }
        // Back, caught up.
        set.start(victim);
        let now = height(&client, &set.urls[survivors[0]]).await.expect("height");
        wait_height(&client, &set, &[victim], now, Duration::from_secs(60)).await;
    }
    assert_eq!(kept, TRIALS);
    // Most kills landed in the middle of a block (a block whose proposer died is
    // finished by the next one); a kill after the block's last part is still a test of
    // the promise, not of the failover.
    eprintln!("{finished_by_another} of {TRIALS} blocks were finished by another proposer");
    assert!(finished_by_another >= TRIALS - 2, "only {finished_by_another} of {TRIALS} kills were mid-block");
    let upto = height(&client, &set.urls[0]).await.expect("height");
    wait_height(&client, &set, &[0, 1, 2, 3], upto, Duration::from_secs(60)).await;
    same_chain(&client, &set, &[0, 1, 2, 3], upto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_stopped_for_ten_seconds_rejoins_without_a_fork() {
    let client = reqwest::Client::new();
    let mut set = Set::init();
    for i in 0..VALIDATORS {
        set.start(i);
    }
    wait_height(&client, &set, &[0, 1, 2, 3], 2, Duration::from_secs(60)).await;
    set.signal(1, libc::SIGSTOP);
    let frozen_at = height(&client, &set.urls[0]).await.expect("height");
    // The other three go on deciding while it is frozen (10 s, as the scenario says).
    let until = Instant::now() + Duration::from_secs(10);
    wait_height(&client, &set, &[0, 2, 3], frozen_at + 5, Duration::from_secs(10)).await;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set.signal(1, libc::SIGCONT);
    let now = height(&client, &set.urls[0]).await.expect("height");
    wait_height(&client, &set, &[1], now, Duration::from_secs(60)).await;
    wait_height(&client, &set, &[0, 1, 2, 3], now + 2, Duration::from_secs(60)).await;
    same_chain(&client, &set, &[0, 1, 2, 3], now + 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_follows_the_set_and_relays_its_clients_transactions() {
    const FULL: usize = VALIDATORS;
    let client = reqwest::Client::new();
    let mut set = Set::init();
    for i in 0..=VALIDATORS {
        set.start(i);
    }
    wait_height(&client, &set, &[0, 1, 2, 3, FULL], 2, Duration::from_secs(60)).await;
    // Its clients' transactions reach the validators and are decided.
    let to = alloy_primitives::Address::repeat_byte(0x45);
    let txs = common::dev_transfers(2, to);
    send_spread(&client, &set, &txs, &[FULL], FULL).await;
    let upto = height(&client, &set.urls[FULL]).await.expect("height");
    wait_height(&client, &set, &[0, 1, 2, 3, FULL], upto, Duration::from_secs(60)).await;
    // Its blocks are the validators' (hashes, roots, sequencer blocks, certificates).
    assert_eq!(same_chain(&client, &set, &[0, 1, 2, 3, FULL], upto).await, txs.len());
    // It never proposes: every block was proposed by a validator.
    let genesis: Value =
        serde_json::from_slice(&std::fs::read(set.homes[0].join("genesis.json")).expect("genesis")).expect("json");
    let validators: Vec<String> = genesis["validators"]
        .as_array()
        .expect("validators")
        .iter()
        .map(|v| v["address"].as_str().expect("address").to_lowercase())
        .collect();
    for n in 1..=upto {
        let s =
            rpc(&client, &set.urls[FULL], "cairn_getSequencerBlock", json!([format!("{n:#x}")])).await.expect("seq");
        assert!(validators.contains(&s["proposer"].as_str().expect("proposer").to_lowercase()), "{s}");
    }
}

/// Evidence every node of `nodes` keeps (`cairn_getEvidence`) against `signer` with
/// `conflict`, polled until all have one (at most `within`, sending `keep_busy` meanwhile).
async fn wait_evidence(
    client: &reqwest::Client,
    set: &Set,
    nodes: &[usize],
    signer: &str,
    conflict: &str,
    within: Duration,
    mut keep_busy: impl FnMut() -> Option<String>,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let mut found = Vec::new();
        for i in nodes {
            let list = rpc(client, &set.urls[*i], "cairn_getEvidence", json!([])).await.unwrap_or(json!([]));
            let record = list.as_array().into_iter().flatten().find(|e| {
                e["conflict"] == conflict && e["signer"].as_str().map(str::to_lowercase).as_deref() == Some(signer)
            });
            if let Some(record) = record {
                found.push(record.clone());
            }
        }
        if found.len() == nodes.len() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} of nodes {nodes:?} keep {conflict} evidence against {signer} after {within:?}\n{}",
            found.len(),
            set.warnings()
        );
        if let Some(raw) = keep_busy() {
            let _ = rpc_raw(client, &set.urls[0], "eth_sendRawTransaction", json!([raw])).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocating_proposer_is_recorded_by_every_honest_node_and_evidence_is_gossiped() {
    const BYZANTINE: usize = 3;
    const FULL: usize = VALIDATORS;
    let client = reqwest::Client::new();
    let mut set = Set::init();
    for i in 0..VALIDATORS {
        if i == BYZANTINE {
            set.start_with(i, &["--fault", "equivocate"]);
        } else {
            set.start(i);
        }
    }
    set.start(FULL);
    let addresses = set_addresses(&client, &set).await;
    wait_height(&client, &set, &[0, 1, 2, FULL], 2, Duration::from_secs(60)).await;

    // Transactions keep coming, so the byzantine validator's blocks have fragments: it
    // streams two different signed fragments for the first position of each.
    let to = alloy_primitives::Address::repeat_byte(0x46);
    let txs = common::dev_transfers(40, to);
    let mut next = txs.iter().map(|(_, raw)| raw.clone());
    let honest = [0, 1, 2, FULL];
    let found =
        wait_evidence(&client, &set, &honest, &addresses[BYZANTINE], "samePosition", Duration::from_secs(90), || {
            next.next()
        })
        .await;
    let ids: std::collections::BTreeSet<String> =
        found.iter().map(|e| e["id"].as_str().expect("id").to_string()).collect();
    assert!(!ids.is_empty());
    for e in &found {
        assert_eq!(e["fragments"].as_array().map(Vec::len), Some(2), "{e}");
    }

    // Anyone can check a record with nothing but its signatures.
    let file = set.dir.path().join("evidence.json");
    std::fs::write(&file, serde_json::to_vec(&found[0]).expect("json")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["preconf", "verify"])
        .arg(&file)
        .args(["--sequencer", &addresses[BYZANTINE]])
        .output()
        .expect("run verify");
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("verdict json");
    assert_eq!(out.status.code(), Some(3), "{verdict}");
    assert_eq!(verdict["verdict"], "equivocation");
    assert_eq!(verdict["evidence"]["conflict"], "samePosition");

    // The chain goes on: every honest node decides the same blocks, with the
    // transactions of the byzantine validator's failed proposals.
    let upto = height(&client, &set.urls[0]).await.expect("height");
    wait_height(&client, &set, &honest, upto, Duration::from_secs(60)).await;
    same_chain(&client, &set, &honest, upto).await;

    // A double vote handed to one validator reaches every other (gossip to the
    // validators a node relays to), and a node keeps evidence only against the set's
    // validators.
    let key: alloy_signer_local::PrivateKeySigner =
        std::fs::read_to_string(set.homes[2].join("validator.key")).expect("key").trim().parse().expect("key");
    let outsider = alloy_signer_local::PrivateKeySigner::random();
    let double = |key| common::double_vote(key, 31337);
    let refused = rpc_raw(&client, &set.urls[0], "cairn_submitEvidence", json!([double(&outsider)])).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(refused["error"]["message"].as_str().expect("message").contains("not one"), "{refused}");
    let kept = rpc_raw(&client, &set.urls[0], "cairn_submitEvidence", json!([double(&key)])).await;
    assert_eq!(kept["result"]["conflict"], "doubleVote", "{kept}");
    let gossiped =
        wait_evidence(&client, &set, &[0, 1, 2, 3], &addresses[2], "doubleVote", Duration::from_secs(30), || None)
            .await;
    for e in &gossiped {
        assert_eq!(e["id"], kept["result"]["id"], "{e}");
        assert_eq!(e["votes"].as_array().map(Vec::len), Some(2), "{e}");
    }
    std::fs::write(&file, serde_json::to_vec(&gossiped[3]).expect("json")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["preconf", "verify"]).arg(&file).output().expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A network namespace holding one validator, joined to the host by a veth pair: the
/// host's end of the link can be taken down (the validator is cut off) and up again.
/// The other nodes listen on an address of the host's loopback device, so that cutting
/// the link cuts only this validator off. Removed on drop.
struct Netns {
    name: String,
    host_link: String,
    /// The host's address (on `lo`) and the namespace's.
    host: String,
    inside: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Netns {
    fn create() -> Result<Netns, String> {
        let pid = std::process::id();
        let x = pid % 250;
        let ns = Netns {
            name: format!("cairn-{pid}"),
            host_link: format!("cv{pid}h"),
            host: format!("10.213.{x}.1"),
            inside: format!("10.213.{x}.2"),
        };
        let inner_link = format!("cv{pid}n");
        let (host32, inside32) = (format!("{}/32", ns.host), format!("{}/32", ns.inside));
        ip(&["netns", "add", &ns.name])?;
        ip(&["link", "add", &ns.host_link, "type", "veth", "peer", "name", &inner_link])?;
        ip(&["link", "set", &inner_link, "netns", &ns.name])?;
        ip(&["addr", "add", &host32, "dev", "lo"])?;
        ip(&["link", "set", &ns.host_link, "up"])?;
        ns.route()?;
        ip(&["netns", "exec", &ns.name, "ip", "addr", "add", &inside32, "dev", &inner_link])?;
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", &inner_link, "up"])?;
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"])?;
        ip(&["netns", "exec", &ns.name, "ip", "route", "add", &host32, "dev", &inner_link])?;
        Ok(ns)
    }

    fn route(&self) -> Result<(), String> {
        let inside32 = format!("{}/32", self.inside);
        ip(&["route", "replace", &inside32, "dev", &self.host_link, "src", &self.host])
    }

    /// Cuts the validator inside off the network.
    fn cut(&self) {
        ip(&["link", "set", &self.host_link, "down"]).expect("link down");
    }

    fn heal(&self) {
        ip(&["link", "set", &self.host_link, "up"]).expect("link up");
        self.route().expect("route");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["addr", "del", &format!("{}/32", self.host), "dev", "lo"]);
    }
}

/// Where network namespaces can be made (root), one validator is cut off the network
/// for 10 s under load and healed: the others go on deciding, it catches up, and every
/// node has the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_cut_off_the_network_rejoins_without_a_fork() {
    const CUT: usize = 3;
    #[allow(unsafe_code)]
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) if !root => {
            eprintln!("not root: no network namespace, so this test cannot cut a validator off ({e})");
            return;
        }
        Err(e) => panic!("as root, a network namespace must be made: {e}"),
    };
    let client = reqwest::Client::new();
    let mut set = Set::init();
    // Validator CUT listens inside the namespace, the others on the host's address.
    let cut_ports = [set.base + CUT as u16, set.base + 100 + CUT as u16];
    for home in &set.homes {
        let path = home.join("config.toml");
        let mut config = std::fs::read_to_string(&path).expect("config");
        for port in cut_ports {
            config = config.replace(&format!("127.0.0.1:{port}"), &format!("{}:{port}", ns.inside));
        }
        std::fs::write(&path, config.replace("127.0.0.1:", &format!("{}:", ns.host))).expect("write");
    }
    for (i, url) in set.urls.iter_mut().enumerate() {
        let host = if i == CUT { &ns.inside } else { &ns.host };
        *url = url.replace("127.0.0.1", host);
    }
    set.wrap[CUT] = ["ip", "netns", "exec", &ns.name].map(String::from).to_vec();
    for i in 0..VALIDATORS {
        set.start(i);
    }
    wait_height(&client, &set, &[0, 1, 2, 3], 2, Duration::from_secs(60)).await;
    let to = alloy_primitives::Address::repeat_byte(0x47);
    let txs = common::dev_transfers(3, to);
    send_spread(&client, &set, &txs[..10], &[0, 1, 2, 3], 0).await;

    // Cut off: the others decide without it, its clients' transactions wait.
    ns.cut();
    let cut_at = Instant::now();
    let at_cut = height(&client, &set.urls[0]).await.expect("height");
    assert!(height(&client, &set.urls[CUT]).await.is_none(), "the validator is out of reach");
    send_spread(&client, &set, &txs[10..20], &[0, 1, 2], 0).await;
    wait_height(&client, &set, &[0, 1, 2], at_cut + 10, Duration::from_secs(60)).await;
    // The cut lasts 10 s (its connections time out), while the others go on.
    while cut_at.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before_heal = height(&client, &set.urls[0]).await.expect("height");
    assert!(before_heal > at_cut + 10, "the others kept deciding: {at_cut} → {before_heal}");

    // Healed: it catches up and has the same chain as the others.
    ns.heal();
    send_spread(&client, &set, &txs[20..], &[0, 1, 2, 3], 0).await;
    let now = height(&client, &set.urls[0]).await.expect("height");
    wait_height(&client, &set, &[0, 1, 2, 3], now + 2, Duration::from_secs(90)).await;
    let included = same_chain(&client, &set, &[0, 1, 2, 3], now + 2).await;
    assert_eq!(included, txs.len(), "every transaction is in exactly one decided block");
    let balance = rpc(&client, &set.urls[CUT], "eth_getBalance", json!([to, "latest"])).await.expect("balance");
    assert_eq!(hex_u64(&balance), txs.len() as u64, "the healed validator has the state");
    drop(set);
    drop(ns);
}
