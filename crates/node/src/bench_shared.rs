//! `cairn bench shared`: a shared set ordering several rollups under sustained load.
//!
//! `cairn testnet init --rollups` writes a set of N validators ordering K rollups whose
//! genesis funds the workload's senders; each validator runs as a `cairn node` child
//! process, and one `cairn rollup` follower executes the first rollup. This process
//! offers pre-signed transactions carrying `--payload` bytes of calldata at a fixed
//! rate, spread over the rollups (transaction `i` to rollup `i mod K`) and the
//! validators, through `eth_sendRawTransaction`. Figures: the set's ordered rollup
//! bytes and transactions per second (lazy: no execution), send → soft (the follower's
//! block with the transaction sealed, visible over its RPC), the follower's gas per CPU
//! second, and CPU time per ordered transaction per validator.

use anyhow::{bail, Context};
use clap::Args;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, B256, U256};
use serde_json::json;

use crate::bench::{rpc_call, watch_blocks};
use crate::bench_bft::cpu_time;
use crate::bench_preconf::percentiles;

/// The first rollup's chain id; rollup `k` is this plus `k`.
const FIRST_ROLLUP: u64 = 41_001;

#[derive(Args, Clone)]
pub struct SharedBenchArgs {
    /// Rollups the set orders.
    #[arg(long, default_value_t = 2)]
    pub rollups: usize,
    /// Validators in the set.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Offered load, transactions per second (all rollups together).
    #[arg(long, default_value_t = 2_000)]
    pub rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Calldata bytes per transaction (the rollup data the set orders).
    #[arg(long, default_value_t = 1_024)]
    pub payload: usize,
    /// Distinct sending accounts (each rollup uses all of them).
    #[arg(long, default_value_t = 500)]
    pub senders: u64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Validator i serves JSON-RPC on base-port + i and P2P on base-port + 100 + i.
    #[arg(long, default_value_t = 28_545)]
    pub base_port: u16,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Post the set's batches to anvil (from npm) as an Ethereum L1 mining a block every
    /// this many seconds (validator 0 posts, the others post nothing: `[da]` tables in
    /// their homes), instead of the validators' local DA stores.
    #[arg(long, value_name = "SECS")]
    pub l1_block_time: Option<u64>,
}

/// Anvil's development accounts 1 to 9: validator `i` pays for its batches with key `i`.
const L1_KEYS: [&str; 9] = [
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

#[derive(Debug, serde::Serialize)]
struct Figures {
    rollups: usize,
    validators: usize,
    offered_per_sec: u64,
    payload_bytes: usize,
    sent: usize,
    refused: usize,
    ordered: usize,
    ordered_per_sec: f64,
    ordered_bytes_per_sec: f64,
    soft_p50_ms: f64,
    soft_p99_ms: f64,
    /// `local` or `anvil, N s blocks`.
    da: String,
    firm_p50_ms: f64,
    firm_p99_ms: f64,
    follower_mgas_per_cpu_sec: f64,
    cpu_ms_per_ordered_tx: Vec<f64>,
}

struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        for c in &self.0 {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// Starts `cairn ARGS` with its log in `log`; returns it and its JSON-RPC URL.
fn start(args: &[&std::ffi::OsStr], log: &Path) -> anyhow::Result<(std::process::Child, String)> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("Listening on ").and_then(|r| r.split_whitespace().next()).map(str::to_string));
    std::thread::spawn(move || for _ in lines {});
    match addr {
        Some(a) => Ok((child, format!("http://{a}"))),
        None => bail!("{args:?} exited; see {}", log.display()),
    }
}

fn hex_u64(v: &serde_json::Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap_or(0)
}

pub async fn run(args: SharedBenchArgs) -> anyhow::Result<()> {
    if args.rollups == 0 || args.validators == 0 || args.senders == 0 {
        bail!("--rollups, --validators and --senders must be positive");
    }
    let dir = std::env::temp_dir().join(format!("cairn-bench-shared-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let signers: Vec<alloy_signer_local::PrivateKeySigner> = (0..args.senders)
        .map(|i| alloy_signer_local::PrivateKeySigner::from_bytes(&keccak256(format!("cairn bench shared {i}"))))
        .collect::<Result<_, _>>()?;
    let alloc: serde_json::Map<String, serde_json::Value> =
        signers.iter().map(|s| (s.address().to_string(), json!({"balance": "0x3635c9adc5dea00000"}))).collect();
    let genesis_file = dir.join("alloc.json");
    std::fs::write(&genesis_file, serde_json::to_vec(&json!({"config": {}, "alloc": alloc}))?)?;
    let total = (args.rate * args.duration) as usize;
    println!("signing {total} transactions of {} calldata bytes over {} rollups...", args.payload, args.rollups);
    let sink = Address::repeat_byte(0xda);
    let data = vec![0x01u8; args.payload];
    // Prague's calldata floor (EIP-7623): 10 gas per token, 4 tokens per non-zero byte.
    let gas = 21_000 + 40 * args.payload as u64;
    let factories: Vec<cairn_workload::TxFactory> =
        (0..args.rollups).map(|k| cairn_workload::TxFactory::new(FIRST_ROLLUP + k as u64)).collect();
    let mut nonces: HashMap<(usize, usize), u64> = HashMap::new();
    let mut raw = Vec::with_capacity(total);
    let mut hashes = Vec::with_capacity(total);
    for i in 0..total {
        let k = i % args.rollups;
        let s = (i / args.rollups) % signers.len();
        let nonce = nonces.entry((k, s)).or_default();
        let tx = factories[k].sign(
            &signers[s],
            *nonce,
            alloy_primitives::TxKind::Call(sink),
            U256::ZERO,
            data.clone().into(),
            gas,
        )?;
        *nonce += 1;
        hashes.push(*tx.tx_hash());
        raw.push(alloy_primitives::hex::encode_prefixed(tx.encoded_2718()));
    }
    let rollups = (0..args.rollups).map(|k| cairn_primitives::network::Rollup {
        chain_id: FIRST_ROLLUP + k as u64,
        weight: 1,
        min_fee_per_gas: 0,
    });
    let homes = crate::testnet::init(&crate::testnet::InitArgs {
        validators: args.validators,
        out: dir.join("set"),
        base_port: args.base_port,
        chain_id: 31337,
        dev_accounts: 10,
        genesis: Some(genesis_file),
        full_nodes: 0,
        rollups: rollups.collect(),
        block_bytes: None,
        block_gas: None,
    })?;
    let l1 = match args.l1_block_time {
        None => None,
        Some(secs) => {
            if args.validators > L1_KEYS.len() {
                bail!("--l1-block-time: at most {} validators (one anvil account each)", L1_KEYS.len());
            }
            let bt = secs.max(1).to_string();
            let anvil = crate::bench::start_anvil(&crate::bench::native_anvil(), None, Some(&bt)).await?;
            // One poster (validator 0, which the follower reads from): each validator
            // posting its own copy would take a multiple of the L1's blob space.
            for (i, (home, key)) in homes.iter().zip(L1_KEYS).enumerate() {
                let path = home.join(crate::testnet::CONFIG_FILE);
                let mut config = std::fs::read_to_string(&path)?;
                if i == 0 {
                    config.push_str(&format!(
                        "\n[da]\nlayer = \"ethereum\"\nl1-rpc = \"{}\"\nl1-key = \"{key}\"\n",
                        anvil.url
                    ));
                } else {
                    config.push_str("\n[da]\nlayer = \"none\"\n");
                }
                std::fs::write(&path, config)?;
            }
            Some(anvil)
        }
    };
    let da = args.l1_block_time.map_or_else(|| "local".to_string(), |s| format!("anvil, {s} s blocks"));
    let mut procs = Procs(Vec::new());
    let mut urls = Vec::new();
    for (i, home) in homes.iter().enumerate() {
        let (child, url) =
            start(&["node".as_ref(), "--home".as_ref(), home.as_os_str()], &dir.join(format!("node-{i}.log")))?;
        procs.0.push(child);
        urls.push(url);
    }
    let set_genesis = homes[0].join(crate::testnet::GENESIS_FILE);
    let chain = FIRST_ROLLUP.to_string();
    let follower_dir = dir.join("follower");
    let (follower, follower_url) = start(
        &[
            "rollup".as_ref(),
            "--chain-id".as_ref(),
            chain.as_ref(),
            "--sequencer".as_ref(),
            urls[0].as_ref(),
            "--genesis".as_ref(),
            set_genesis.as_os_str(),
            "--port".as_ref(),
            "0".as_ref(),
            "--datadir".as_ref(),
            follower_dir.as_os_str(),
        ],
        &dir.join("follower.log"),
    )?;
    let follower_pid = follower.id();
    procs.0.push(follower);
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let ready = Instant::now() + Duration::from_secs(60);
    loop {
        let h = rpc_call(&client, &follower_url, "eth_blockNumber", json!([])).await.ok();
        if h.as_ref().is_some_and(|v| hex_u64(v) > 0) {
            break;
        }
        if Instant::now() > ready {
            bail!("the follower executes no block; see {}", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let soft_at: Arc<Mutex<HashMap<B256, Instant>>> = Arc::default();
    let watcher = watch_blocks(&client, &follower_url, &stop, &soft_at).await?;
    let firm_at: Arc<Mutex<HashMap<B256, Instant>>> = Arc::default();
    let firm_watcher = crate::bench::watch_tag(&client, &follower_url, "finalized", &stop, &firm_at).await?;
    let status = rpc_call(&client, &urls[0], "cairn_sharedStatus", json!([])).await?;
    let first_height = hex_u64(&status["decidedHeight"]) + 1;
    let cpu_before: Vec<Duration> = procs.0.iter().map(|c| cpu_time(c.id())).collect();

    let sent_at: Arc<Vec<Mutex<Option<Instant>>>> = Arc::new((0..total).map(|_| Mutex::new(None)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let raw = Arc::new(raw);
    let set_urls = Arc::new(urls.clone());
    let t0 = Instant::now() + Duration::from_millis(100);
    let gap = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, urls, next, raw, sent_at) =
            (client.clone(), set_urls.clone(), next.clone(), raw.clone(), sent_at.clone());
        let (refused, first_error) = (refused.clone(), first_error.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= raw.len() {
                    break;
                }
                tokio::time::sleep_until((t0 + gap * i as u32).into()).await;
                let sent = Instant::now();
                match rpc_call(&client, &urls[i % urls.len()], "eth_sendRawTransaction", json!([raw[i]])).await {
                    Ok(_) => *sent_at[i].lock().expect("lock") = Some(sent),
                    Err(e) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().expect("lock").get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let accepted = total - refused.load(Ordering::Relaxed);
    // Wait until the set has ordered everything accepted (every validator's lanes empty).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ordered_at = Instant::now();
    loop {
        let mut pooled = 0u64;
        for url in &urls {
            let s = rpc_call(&client, url, "cairn_sharedStatus", json!([])).await?;
            pooled += s["rollups"].as_array().into_iter().flatten().filter_map(|r| r["pooled"].as_u64()).sum::<u64>();
        }
        if pooled == 0 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("{pooled} transactions still pooled after 120 s");
            break;
        }
        ordered_at = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_mid: Vec<Duration> = procs.0.iter().map(|c| cpu_time(c.id())).collect();
    let status = rpc_call(&client, &urls[0], "cairn_sharedStatus", json!([])).await?;
    let last_height = hex_u64(&status["decidedHeight"]);
    let (mut ordered, mut bytes) = (0usize, 0usize);
    for h in first_height..=last_height {
        let b = rpc_call(&client, &urls[0], "cairn_getSequencerBlock", json!([format!("{h:#x}")])).await?;
        for t in b["transactions"].as_array().into_iter().flatten() {
            ordered += 1;
            bytes += t.as_str().map_or(0, |s| (s.len() - 2) / 2);
        }
    }
    let seconds = ordered_at.max(t0).duration_since(t0).as_secs_f64().max(1e-3);
    // The follower's part: its rollup's transactions executed and sealed.
    let mine = (0..total).filter(|i| i % args.rollups == 0 && sent_at[*i].lock().expect("lock").is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && soft_at.lock().expect("lock").len() < mine {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Firm: the follower's `finalized` block (read back from the DA layer and checked).
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline && firm_at.lock().expect("lock").len() < mine {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.context("block watcher")?;
    firm_watcher.await.context("firm watcher")?;
    let firm_at = firm_at.lock().expect("lock").clone();
    let mut firm = Vec::new();
    for (i, h) in hashes.iter().enumerate() {
        if let (Some(sent), Some(done)) = (*sent_at[i].lock().expect("lock"), firm_at.get(h)) {
            firm.push(done.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
    }
    let firm_count = firm.len();
    let (f50, f99, _) = percentiles(firm);
    let follower_cpu = cpu_time(follower_pid).saturating_sub(cpu_before[procs.0.len() - 1]);
    let soft_at = soft_at.lock().expect("lock").clone();
    let mut soft = Vec::new();
    for (i, h) in hashes.iter().enumerate() {
        if let (Some(sent), Some(done)) = (*sent_at[i].lock().expect("lock"), soft_at.get(h)) {
            soft.push(done.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
    }
    let executed_gas = soft.len() as f64 * gas as f64;
    let (s50, s99, _) = percentiles(soft);
    if let Some(e) = first_error.lock().expect("lock").as_ref() {
        eprintln!("first refusal: {e}");
    }
    let cpu_ms_per_ordered_tx: Vec<f64> = cpu_before[..urls.len()]
        .iter()
        .zip(&cpu_mid)
        .map(|(b, a)| a.saturating_sub(*b).as_secs_f64() * 1e3 / ordered.max(1) as f64)
        .collect();
    let f = Figures {
        rollups: args.rollups,
        validators: args.validators,
        offered_per_sec: args.rate,
        payload_bytes: args.payload,
        sent: total,
        refused: total - accepted,
        ordered,
        ordered_per_sec: ordered as f64 / seconds,
        ordered_bytes_per_sec: bytes as f64 / seconds,
        soft_p50_ms: s50,
        soft_p99_ms: s99,
        da,
        firm_p50_ms: f50,
        firm_p99_ms: f99,
        follower_mgas_per_cpu_sec: executed_gas / 1e6 / follower_cpu.as_secs_f64().max(1e-3),
        cpu_ms_per_ordered_tx,
    };
    println!(
        "{} rollups on {} validators | offered {} tx/s of {} B, accepted {}, ordered {} in {:.1} s: {:.0} tx/s, {:.2} MB/s",
        f.rollups,
        f.validators,
        f.offered_per_sec,
        f.payload_bytes,
        accepted,
        f.ordered,
        seconds,
        f.ordered_per_sec,
        f.ordered_bytes_per_sec / 1e6
    );
    println!("send -> soft (follower of rollup {FIRST_ROLLUP} sealed)  p50 {s50:>7.1} ms  p99 {s99:>7.1} ms");
    println!("send -> firm ({}; {firm_count} of {mine} firm)  p50 {f50:>7.1} ms  p99 {f99:>7.1} ms", f.da);
    println!("follower: {:.1} Mgas per CPU second", f.follower_mgas_per_cpu_sec);
    let cpu: Vec<String> = f.cpu_ms_per_ordered_tx.iter().map(|c| format!("{c:.3}")).collect();
    println!("CPU ms per ordered transaction, per validator: {}", cpu.join(", "));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&f)?)?;
    }
    drop(procs);
    drop(l1);
    if std::env::var_os("CAIRN_BENCH_KEEP").is_some() {
        println!("logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
