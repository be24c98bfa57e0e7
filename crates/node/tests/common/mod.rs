//! Starting and stopping the real `cairn` binary for end-to-end tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Node {
    pub child: Child,
    pub port: u16,
    pub datadir: PathBuf,
}

impl Node {
    /// Starts `cairn dev` on a free port; returns once it prints its listening address.
    pub fn start(datadir: &Path, extra: &[&str]) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(["dev", "--port", "0", "--datadir"]).arg(datadir).args(extra);
        if !extra.contains(&"--block-time") {
            cmd.args(["--block-time", "50"]);
        }
        let log = node_log(datadir);
        let stderr = match std::fs::OpenOptions::new().create(true).append(true).open(&log) {
            Ok(f) if std::env::var_os("CAIRN_TEST_LOGS").is_none() => Stdio::from(f),
            _ => test_log(),
        };
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn cairn");
        let addr = listening_on(&mut child).expect("cairn exited before listening");
        let port = addr.rsplit(':').next().expect("port").parse().expect("port number");
        Node { child, port, datadir: datadir.to_path_buf() }
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (SIGTERM, SIGKILL) and waits for the process to exit.
    pub fn stop_with(mut self, signal: i32) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY-free: libc::kill is a plain syscall wrapper; pid is our own child.
        let rc = unsafe_kill(pid, signal);
        assert_eq!(rc, 0, "kill failed");
        self.child.wait().expect("wait")
    }
}

/// The node's log: beside its data directory (a test's data directory is a temporary
/// one), kept and printed when the test fails, removed when it passes.
fn node_log(datadir: &Path) -> PathBuf {
    let name = datadir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    datadir.with_file_name(format!("{name}.cairn.log"))
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = node_log(&self.datadir);
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "--- the last lines of the node's log ({}):\n{}",
                log.display(),
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        } else {
            let _ = std::fs::remove_file(log);
        }
    }
}

/// Where a node's log goes: appended to `$CAIRN_TEST_LOGS/cairn.log` when that is set
/// (to look into a failure), else nowhere.
pub fn test_log() -> Stdio {
    let Some(dir) = std::env::var_os("CAIRN_TEST_LOGS") else { return Stdio::null() };
    match std::fs::OpenOptions::new().create(true).append(true).open(Path::new(&dir).join("cairn.log")) {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, signal: i32) -> i32 {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) }
}

/// The address a child process prints as `Listening on <address> …` on its stdout
/// (`None` if it exits first); the rest of its output is drained so that it never
/// blocks on a full pipe.
pub fn listening_on(child: &mut Child) -> Option<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.expect("read stdout");
        if let Some(rest) = line.strip_prefix("Listening on ") {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    addr
}

/// `tools/node_modules/.bin/<name>`: installed by the README's test command.
pub fn tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the test command from the README (it installs Foundry's {name} from npm)",
        path.display()
    );
    path
}

/// One JSON-RPC call over HTTP; `None` when the node is gone or answered an error.
pub async fn rpc(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> Option<serde_json::Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp: serde_json::Value = client.post(url).json(&body).send().await.ok()?.json().await.ok()?;
    resp.get("result").cloned()
}

/// `kill -9` of a node that clients are loading, then waits for every client task to
/// end (each stops when the node is gone).
pub async fn kill_9_under_load(node: Node, workers: Vec<tokio::task::JoinHandle<()>>) {
    let status = tokio::task::spawn_blocking(move || node.stop_with(libc::SIGKILL)).await.expect("join");
    assert!(!status.success(), "killed, not exited");
    for w in workers {
        w.await.expect("worker");
    }
}

/// ETH transfers of 1 wei to `to` from the ten development accounts, `nonces` each,
/// interleaved so that every sender's nonces come in order: (hash, raw hex).
pub fn dev_transfers(nonces: u64, to: alloy_primitives::Address) -> Vec<(alloy_primitives::B256, String)> {
    use alloy_eips::eip2718::Encodable2718;
    let signers: Vec<_> = cairn_primitives::dev_accounts(cairn_primitives::DEV_MNEMONIC, 10)
        .expect("derive")
        .into_iter()
        .map(|a| a.signer)
        .collect();
    let f = cairn_workload::TxFactory::new(31337);
    let mut txs = Vec::new();
    for nonce in 0..nonces {
        for s in &signers {
            let tx = f.transfer_eth(s, nonce, to, alloy_primitives::U256::from(1)).expect("sign");
            txs.push((*tx.tx_hash(), alloy_primitives::hex::encode_prefixed(tx.encoded_2718())));
        }
    }
    txs
}

/// A reference node: anvil (Foundry, from npm under tools/) on a free port with Prague
/// rules and the same development accounts and chain id as `cairn dev`.
pub struct Anvil {
    pub child: Child,
    pub url: String,
}

impl Anvil {
    /// Starts the native anvil binary npm installed; returns once it prints its address.
    pub fn start(extra: &[&str]) -> Anvil {
        let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
        let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../tools/node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil"));
        assert!(bin.exists(), "{} is missing: run the test command from the README", bin.display());
        let mut child = Command::new(bin)
            .args(["--port", "0", "--hardfork", "prague"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn anvil");
        let url = format!("http://{}", listening_on(&mut child).expect("anvil exited before listening"));
        Anvil { child, url }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON-RPC call over HTTP: the whole response object (`result` or `error`).
pub async fn rpc_raw(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> serde_json::Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    client.post(url).json(&body).send().await.expect("send").json().await.expect("json")
}

/// `eth_getTransactionReceipt` polled as clients poll it until it answers (at most
/// `within`): `null` while the transaction is pooled; once it is preconfirmed the call
/// itself waits for the seal (on anvil it is mined at once).
pub async fn wait_receipt(
    client: &reqwest::Client,
    url: &str,
    hash: &serde_json::Value,
    within: std::time::Duration,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let r = rpc_raw(client, url, "eth_getTransactionReceipt", serde_json::json!([hash])).await;
        if !r["result"].is_null() {
            return r["result"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no receipt for {hash} from {url} within {within:?}: {r}");
        tokio::task::yield_now().await;
    }
}

/// Cairn and a reference node asked the same things.
pub struct Pair {
    pub client: reqwest::Client,
    pub cairn: String,
    pub anvil: String,
}

impl Pair {
    pub fn new(cairn: String, anvil: String) -> Self {
        Self { client: reqwest::Client::new(), cairn, anvil }
    }

    /// The same call to both: (Cairn's answer, anvil's answer).
    pub async fn both(&self, method: &str, params: serde_json::Value) -> (serde_json::Value, serde_json::Value) {
        let c = rpc_raw(&self.client, &self.cairn, method, params.clone()).await;
        let a = rpc_raw(&self.client, &self.anvil, method, params).await;
        (c, a)
    }

    /// Sends raw transaction bytes (hex) to one node; its receipt once it has one.
    pub async fn send_raw(&self, url: &str, raw: &str) -> serde_json::Value {
        let sent = rpc_raw(&self.client, url, "eth_sendRawTransaction", serde_json::json!([raw])).await;
        let hash = sent["result"].clone();
        assert!(!hash.is_null(), "{url}: {sent}");
        wait_receipt(&self.client, url, &hash, std::time::Duration::from_secs(60)).await
    }

    /// Sends `tx` to both (the same hash from both) and returns both receipts.
    pub async fn send(&self, tx: &cairn_primitives::TxEnvelope) -> (serde_json::Value, serde_json::Value) {
        use alloy_eips::eip2718::Encodable2718;
        let raw = alloy_primitives::hex::encode_prefixed(tx.encoded_2718());
        let c = self.send_raw(&self.cairn, &raw).await;
        let a = self.send_raw(&self.anvil, &raw).await;
        assert_eq!(c["transactionHash"], a["transactionHash"], "both took it with the same hash");
        (c, a)
    }
}

/// Consensus evidence a validator with `key` could be accused with: two precommits of
/// height 9,999, round 0 on chain `chain_id` for different values (a double vote).
pub fn double_vote(key: &alloy_signer_local::PrivateKeySigner, chain_id: u64) -> serde_json::Value {
    use alloy_signer::SignerSync;
    let vote = |value: alloy_primitives::B256| {
        let hash = cairn_consensus::vote_hash(chain_id, true, 9_999, 0, value);
        let signature = key.sign_hash_sync(&hash).expect("sign");
        serde_json::json!({"kind": 1, "height": 9_999, "round": 0, "value": value, "signature": format!("0x{}", alloy_primitives::hex::encode(signature.as_bytes()))})
    };
    let (x, y) = (alloy_primitives::B256::repeat_byte(1), alloy_primitives::B256::repeat_byte(2));
    serde_json::json!({"conflict": "doubleVote", "chainId": chain_id, "votes": [vote(x), vote(y)]})
}
