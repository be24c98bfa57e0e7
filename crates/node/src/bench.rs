//! `cairn bench rpc`: throughput and latency of JSON-RPC ingestion to inclusion, Cairn
//! side by side with anvil on the same pre-signed workload and the same genesis.
//!
//! Workload: `senders` accounts, prefunded, each holding `Token` balance; every
//! transaction is an ERC-20 `transfer` from one sender to the next (the hot-key shape of
//! a payment workload), signed in advance. The client sends with `concurrency`
//! requests in flight for `duration` seconds; a block watcher records when each
//! transaction's block appears. Included tx/s counts transactions included during the
//! send window; latency is from the send call to the block being visible over RPC, which
//! is when the standard `eth_getTransactionReceipt` answers the sealed receipt (block,
//! receipts and head are one atomic commit).

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{hex, Address, B256, U256};
use anyhow::{bail, Context};
use cairn_workload::{bench_signer, token_balance_slot, transfer_call, Artifacts, TxFactory};
use clap::Args;
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct RpcBenchArgs {
    /// Seconds of sending per node (the sustained window).
    #[arg(long, default_value_t = 25)]
    pub duration: u64,
    /// Distinct sending accounts.
    #[arg(long, default_value_t = 4_000)]
    pub senders: u64,
    /// Pre-signed transactions in all (the send window ends early if they run out).
    #[arg(long, default_value_t = 500_000)]
    pub txs: u64,
    /// Transactions per JSON-RPC request (1 = one `eth_sendRawTransaction` per HTTP
    /// request; more = JSON-RPC batches). The same for every node measured.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// anvil binary (default: the native binary npm installed under tools/node_modules).
    #[arg(long)]
    pub anvil: Option<PathBuf>,
    /// Skip anvil (Cairn figures only).
    #[arg(long)]
    pub no_anvil: bool,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Instead of the anvil comparison, measure what state commitment and state history
    /// cost: Cairn as configured by default, with `--state-history 0`, and with the
    /// committer off, interleaved, each this many times (medians reported).
    #[arg(long, value_name = "ROUNDS")]
    pub commit_compare: Option<usize>,
    /// Instead of the anvil comparison, measure what preconfirmation fragments cost:
    /// Cairn as configured by default (a signed, fsynced fragment every 10 ms) and with
    /// `--fragment-interval 0`, interleaved, each this many times (medians reported).
    #[arg(long, value_name = "ROUNDS")]
    pub fragment_compare: Option<usize>,
}

const CHAIN_ID: u64 = 31337;

pub(crate) struct Workload {
    pub genesis: PathBuf,
    pub raw: Vec<String>,
    pub hashes: Vec<B256>,
}

pub(crate) fn build_workload(args: &RpcBenchArgs, dir: &Path) -> anyhow::Result<Workload> {
    let art = Artifacts::load_default()?;
    let token = Address::repeat_byte(0x70);
    let signers: Vec<_> = (0..args.senders).map(bench_signer).collect();
    let mut alloc = serde_json::Map::new();
    let mut storage = serde_json::Map::new();
    let balance = U256::from(10u64).pow(U256::from(24u64));
    for s in &signers {
        alloc.insert(s.address().to_string(), json!({ "balance": "0x3635c9adc5dea00000" }));
        storage.insert(B256::from(token_balance_slot(s.address())).to_string(), json!(B256::from(balance).to_string()));
    }
    alloc.insert(
        token.to_string(),
        json!({ "balance": "0x0", "code": art.token_runtime.to_string(), "storage": storage }),
    );
    let genesis = json!({
        "config": { "chainId": CHAIN_ID, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
                    "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0, "istanbulBlock": 0,
                    "berlinBlock": 0, "londonBlock": 0, "mergeNetsplitBlock": 0, "shanghaiTime": 0, "cancunTime": 0,
                    "pragueTime": 0, "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": true },
        "nonce": "0x0", "timestamp": "0x0", "extraData": "0x", "gasLimit": "0x3b9aca00", "difficulty": "0x0",
        "baseFeePerGas": "0x3b9aca00", "alloc": alloc,
    });
    let path = dir.join("genesis.json");
    std::fs::write(&path, serde_json::to_vec(&genesis)?)?;

    // Sign on every core: round-robin over senders so nonces arrive in order.
    let f = TxFactory::new(CHAIN_ID);
    let n = args.txs as usize;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let per = n.div_ceil(threads);
    let signers = Arc::new(signers);
    let mut parts = Vec::new();
    for t in 0..threads {
        let signers = signers.clone();
        parts.push(std::thread::spawn(move || -> anyhow::Result<Vec<(String, B256)>> {
            let mut out = Vec::with_capacity(per);
            for i in (t * per)..((t + 1) * per).min(n) {
                let s = i as u64 % signers.len() as u64;
                let nonce = i as u64 / signers.len() as u64;
                let to = signers[((s + 1) % signers.len() as u64) as usize].address();
                let tx = f.call(&signers[s as usize], nonce, token, transfer_call(to, U256::from(1)), 60_000)?;
                out.push((hex::encode_prefixed(tx.encoded_2718()), *tx.tx_hash()));
            }
            Ok(out)
        }));
    }
    let mut raw = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    for p in parts {
        for (r, h) in p.join().map_err(|_| anyhow::anyhow!("signing thread panicked"))?? {
            raw.push(r);
            hashes.push(h);
        }
    }
    Ok(Workload { genesis: path, raw, hashes })
}

/// A node under test, killed on drop.
pub(crate) struct Target {
    child: Child,
    pub url: String,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_cairn(genesis: &Path, datadir: &Path, extra: &[&str]) -> anyhow::Result<Target> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["dev", "--port", "0", "--pool-size", "1000000", "--genesis"])
        .arg(genesis)
        .arg("--datadir")
        .arg(datadir)
        .args(extra)
        .env("RUST_LOG", std::env::var("CAIRN_BENCH_NODE_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("Listening on ") {
            let addr = rest.split_whitespace().next().context("address")?;
            return Ok(Target { child, url: format!("http://{addr}") });
        }
    }
    bail!("cairn exited before listening")
}

/// npm's `.bin/anvil` is a Node.js launcher; run (and later kill) the native binary it
/// wraps instead.
pub(crate) fn native_anvil() -> PathBuf {
    let arch = if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tools/node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) async fn start_anvil(
    bin: &Path,
    genesis: Option<&Path>,
    block_time: Option<&str>,
) -> anyhow::Result<Target> {
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--hardfork", "prague", "--gas-limit", "1000000000", "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(genesis) = genesis {
        cmd.arg("--init").arg(genesis);
    }
    if let Some(bt) = block_time {
        cmd.args(["--block-time", bt]);
    }
    let target = Target { child: cmd.spawn()?, url: format!("http://127.0.0.1:{port}") };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if rpc_call(&client, &target.url, "eth_chainId", json!([])).await.is_ok() {
            return Ok(target);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("anvil did not come up on port {port}")
}

pub(crate) async fn rpc_call(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp: serde_json::Value = client.post(url).json(&body).send().await?.json().await?;
    if let Some(err) = resp.get("error") {
        bail!("{method}: {err}");
    }
    Ok(resp["result"].clone())
}

#[derive(Debug, Clone, serde::Serialize)]
struct Figures {
    node: String,
    sent: usize,
    batch: usize,
    accepted: usize,
    rejected: usize,
    send_seconds: f64,
    accepted_per_sec: f64,
    included_in_window: usize,
    included_per_sec: f64,
    included_total: usize,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
}

/// Records when each transaction's block becomes visible over RPC (polls the head every
/// 5 ms, fetches new blocks in batches) until `stop`.
pub(crate) async fn watch_blocks(
    client: &reqwest::Client,
    url: &str,
    stop: &Arc<AtomicBool>,
    included: &Arc<Mutex<HashMap<B256, Instant>>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    watch_tag(client, url, "latest", stop, included).await
}

/// The number of the block `tag` names on `url`.
async fn tagged_number(client: &reqwest::Client, url: &str, tag: &str) -> anyhow::Result<u64> {
    let n = if tag == "latest" {
        rpc_call(client, url, "eth_blockNumber", json!([])).await?
    } else {
        rpc_call(client, url, "eth_getBlockByNumber", json!([tag, false])).await?["number"].clone()
    };
    Ok(u64::from_str_radix(n.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)?)
}

/// As [`watch_blocks`], for the block `tag` names (`latest`, `finalized`): when it
/// moves, the transactions of every block up to it are stamped.
pub(crate) async fn watch_tag(
    client: &reqwest::Client,
    url: &str,
    tag: &'static str,
    stop: &Arc<AtomicBool>,
    included: &Arc<Mutex<HashMap<B256, Instant>>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let start_block = tagged_number(client, url, tag).await?;
    let (client, url, stop, included) = (client.clone(), url.to_string(), stop.clone(), included.clone());
    Ok(tokio::spawn(async move {
        let mut seen = start_block;
        while !stop.load(Ordering::Relaxed) {
            let Ok(head) = tagged_number(&client, &url, tag).await else { continue };
            if head <= seen {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let now = Instant::now();
            let upto = head.min(seen + 100);
            let batch: Vec<_> = (seen + 1..=upto)
                .map(|n| json!({"jsonrpc":"2.0","id":n,"method":"eth_getBlockByNumber","params":[format!("0x{n:x}"), false]}))
                .collect();
            let Ok(resp) = client.post(&url).json(&batch).send().await else { continue };
            let Ok(blocks) = resp.json::<Vec<serde_json::Value>>().await else { continue };
            let mut map = included.lock().expect("lock");
            for b in blocks {
                for h in b["result"]["transactions"].as_array().into_iter().flatten() {
                    if let Some(h) = h.as_str().and_then(|s| s.parse::<B256>().ok()) {
                        map.entry(h).or_insert(now);
                    }
                }
            }
            seen = upto;
        }
    }))
}

async fn measure(name: &str, url: &str, w: &Workload, args: &RpcBenchArgs) -> anyhow::Result<Figures> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let sent_at: Arc<Vec<Mutex<Option<Instant>>>> = Arc::new((0..w.raw.len()).map(|_| Mutex::new(None)).collect());
    let raw = Arc::new(w.raw.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let included: Arc<Mutex<HashMap<B256, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));

    let watcher = watch_blocks(&client, url, &stop, &included).await?;

    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.duration);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url, next, raw, sent_at) =
            (client.clone(), url.to_string(), next.clone(), raw.clone(), sent_at.clone());
        let (accepted, rejected, first_error) = (accepted.clone(), rejected.clone(), first_error.clone());
        let batch = args.batch.max(1);
        workers.push(tokio::spawn(async move {
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= raw.len() {
                    break;
                }
                let ids: Vec<usize> = (first..(first + batch).min(raw.len())).collect();
                let calls: Vec<String> = ids
                    .iter()
                    .map(|i| {
                        format!(
                            r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_sendRawTransaction","params":["{}"]}}"#,
                            raw[*i]
                        )
                    })
                    .collect();
                let body = if batch == 1 { calls[0].clone() } else { format!("[{}]", calls.join(",")) };
                let sent = Instant::now();
                let resp = client.post(&url).header("content-type", "application/json").body(body).send().await;
                let replies: Vec<serde_json::Value> = match resp {
                    Ok(r) => match r.json::<serde_json::Value>().await {
                        Ok(serde_json::Value::Array(v)) => v,
                        Ok(v) => vec![v],
                        Err(e) => {
                            first_error.lock().expect("lock").get_or_insert_with(|| e.to_string());
                            Vec::new()
                        }
                    },
                    Err(e) => {
                        first_error.lock().expect("lock").get_or_insert_with(|| e.to_string());
                        Vec::new()
                    }
                };
                let mut ok_ids = Vec::new();
                for v in &replies {
                    if v.get("result").is_some() {
                        if let Some(id) = v["id"].as_u64() {
                            ok_ids.push(id as usize);
                        }
                    } else {
                        first_error.lock().expect("lock").get_or_insert_with(|| v["error"].to_string());
                    }
                }
                for i in &ok_ids {
                    *sent_at[*i].lock().expect("lock") = Some(sent);
                }
                accepted.fetch_add(ok_ids.len(), Ordering::Relaxed);
                rejected.fetch_add(ids.len() - ok_ids.len(), Ordering::Relaxed);
            }
        }));
    }
    for wk in workers {
        wk.await?;
    }
    let send_seconds = t0.elapsed().as_secs_f64();
    let window_end = t0 + Duration::from_secs_f64(send_seconds);
    let accepted_n = accepted.load(Ordering::Relaxed);
    // let the node drain what it accepted (bounded wait)
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < drain_deadline && included.lock().expect("lock").len() < accepted_n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await?;

    let included = included.lock().expect("lock").clone();
    let mut latencies = Vec::new();
    let mut in_window = 0;
    for (i, h) in w.hashes.iter().enumerate() {
        let (Some(sent), Some(inc)) = (*sent_at[i].lock().expect("lock"), included.get(h)) else { continue };
        latencies.push(inc.saturating_duration_since(sent).as_secs_f64() * 1e3);
        if *inc <= window_end {
            in_window += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct =
        |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    if let Some(e) = first_error.lock().expect("lock").as_ref() {
        eprintln!("  {name}: first rejection: {e}");
    }
    let window = window_end.duration_since(t0).as_secs_f64();
    Ok(Figures {
        node: name.to_string(),
        sent: next.load(Ordering::Relaxed).min(w.raw.len()),
        batch: args.batch,
        accepted: accepted_n,
        rejected: rejected.load(Ordering::Relaxed),
        send_seconds,
        accepted_per_sec: accepted_n as f64 / send_seconds,
        included_in_window: in_window,
        included_per_sec: in_window as f64 / window,
        included_total: latencies.len(),
        latency_p50_ms: pct(0.5),
        latency_p99_ms: pct(0.99),
    })
}

fn print(f: &Figures) {
    println!(
        "{:<22} accepted {:>8.0} tx/s | included {:>8.0} tx/s ({} in {:.1} s window, {} total) | send -> sealed receipt visible p50 {:>8.1} ms p99 {:>8.1} ms | rejected {}",
        f.node, f.accepted_per_sec, f.included_per_sec, f.included_in_window, f.send_seconds, f.included_total,
        f.latency_p50_ms, f.latency_p99_ms, f.rejected
    );
}

pub(crate) async fn rpc(args: RpcBenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cairn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!("signing {} ERC-20 transfers from {} senders...", args.txs, args.senders);
    let w = build_workload(&args, &dir)?;
    let mut results = Vec::new();
    let compared = match (args.commit_compare, args.fragment_compare) {
        (Some(rounds), _) => Some((rounds, COMMIT_VARIANTS)),
        (None, Some(rounds)) => Some((rounds, FRAGMENT_VARIANTS)),
        (None, None) => None,
    };
    if let Some((rounds, variants)) = compared {
        compare(&args, &w, &dir, rounds, variants).await?;
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    {
        let cairn = start_cairn(&w.genesis, &dir.join("cairn-data"), &[])?;
        let f = measure("cairn", &cairn.url, &w, &args).await?;
        print(&f);
        results.push(f);
    }
    if !args.no_anvil {
        let bin = args.anvil.clone().unwrap_or_else(native_anvil);
        for (label, bt) in [("anvil (automine)", None), ("anvil (--block-time 0.2)", Some("0.2"))] {
            let anvil =
                start_anvil(&bin, Some(&w.genesis), bt).await.with_context(|| format!("starting {}", bin.display()))?;
            let f = measure(label, &anvil.url, &w, &args).await?;
            print(&f);
            results.push(f);
        }
        let cairn = &results[0];
        let best = results[1..]
            .iter()
            .max_by(|a, b| a.included_per_sec.total_cmp(&b.included_per_sec))
            .context("anvil runs")?;
        println!(
            "ratio cairn/{}: included tx/s {:.2}x, accepted tx/s {:.2}x, p50 latency {:.2}x",
            best.node,
            cairn.included_per_sec / best.included_per_sec,
            cairn.accepted_per_sec / best.accepted_per_sec,
            cairn.latency_p50_ms / best.latency_p50_ms,
        );
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&results)?)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

type Variants = &'static [(&'static str, &'static [&'static str])];

/// Default, no state history, no state commitment (the last is the baseline).
const COMMIT_VARIANTS: Variants = &[
    ("cairn (default)", &[]),
    ("cairn (no history)", &["--state-history", "0"]),
    ("cairn (no commitment)", &["--no-state-root"]),
];

/// Default (fragments every 10 ms), no fragments (the baseline).
const FRAGMENT_VARIANTS: Variants =
    &[("cairn (fragments 10 ms)", &[]), ("cairn (no fragments)", &["--fragment-interval", "0"])];

/// Cairn configurations run in turn (so drift on a noisy machine hits all alike);
/// prints each run, the medians, and each median's ratio to the last variant's.
async fn compare(
    args: &RpcBenchArgs,
    w: &Workload,
    dir: &Path,
    rounds: usize,
    variants: Variants,
) -> anyhow::Result<()> {
    let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds.max(1) {
        for (i, (label, extra)) in variants.iter().enumerate() {
            let datadir = dir.join(format!("cairn-data-{i}-{round}"));
            let f = {
                let node = start_cairn(&w.genesis, &datadir, extra)?;
                measure(label, &node.url, w, args).await?
            };
            let _ = std::fs::remove_dir_all(&datadir);
            print(&f);
            runs[i].push(f);
        }
    }
    let median = |xs: &mut Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let mut medians = Vec::new();
    for ((label, _), figures) in variants.iter().zip(&runs) {
        let included = median(&mut figures.iter().map(|f| f.included_per_sec).collect());
        let p50 = median(&mut figures.iter().map(|f| f.latency_p50_ms).collect());
        println!("median {label:<22} included {included:>8.0} tx/s | latency p50 {p50:>7.1} ms");
        medians.push(included);
    }
    let (baseline, base_label) = (medians[medians.len() - 1], variants[variants.len() - 1].0);
    for ((label, _), m) in variants.iter().zip(&medians).take(variants.len() - 1) {
        println!("{label} / {base_label}: {:.3}x included tx/s", m / baseline);
    }
    if let Some(path) = &args.json {
        let all: Vec<&Figures> = runs.iter().flatten().collect();
        std::fs::write(path, serde_json::to_vec_pretty(&all)?)?;
    }
    Ok(())
}
