//! `cairn bench bft`: a local validator set under sustained load.
//!
//! `cairn testnet init` writes a set of N validators whose genesis also funds the
//! workload's senders and the ERC-20 contract; each validator runs as a `cairn node`
//! child process. This process offers pre-signed ERC-20 transfers at a fixed rate, spread
//! over the validators (transaction `i` to validator `i mod N`), each through
//! `cairn_sendRawTransactionPreconfirmed`. Per transaction: send → signed
//! preconfirmation (the answer), and send → its block decided and sealed, visible over
//! validator 0's RPC (a watcher polls the head). Also: included transactions per second
//! and CPU time (user + system, from `/proc`) per included transaction per validator.
//! N = 1 runs the set of one (`Solo`), the reference for the consensus overhead.

use anyhow::{bail, Context};
use clap::Args;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bench::{build_workload, watch_blocks, RpcBenchArgs};
use crate::bench_preconf::percentiles;

#[derive(Args, Clone)]
pub struct BftBenchArgs {
    /// Validators in the set (1 runs `Solo`).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Offered load, transactions per second.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Distinct sending accounts.
    #[arg(long, default_value_t = 2_000)]
    pub senders: u64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Validator i serves JSON-RPC on base-port + i and P2P on base-port + 100 + i.
    #[arg(long, default_value_t = 27_545)]
    pub base_port: u16,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the validators' homes and logs (their path is printed) instead of removing
    /// them; set `RUST_LOG` to choose what the validators log.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, serde::Serialize)]
struct Figures {
    validators: usize,
    offered_per_sec: u64,
    sent: usize,
    preconfirmed: usize,
    failed: usize,
    included: usize,
    included_per_sec: f64,
    preconf_p50_ms: f64,
    preconf_p99_ms: f64,
    preconf_p999_ms: f64,
    decided_p50_ms: f64,
    decided_p99_ms: f64,
    decided_p999_ms: f64,
    /// CPU milliseconds per included transaction, per validator (its own process).
    cpu_ms_per_tx: Vec<f64>,
}

/// User + system CPU time of a process so far.
#[allow(unsafe_code)]
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return Duration::ZERO };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 and 15 of stat (utime, stime), counted from the state field (3).
    let total = ticks(11) + ticks(12);
    // SAFETY: sysconf only reads its integer argument.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(total as f64 / hz as f64)
}

/// When a transaction was sent and when its preconfirmation came back.
type SentAnswered = Option<(Instant, Instant)>;

struct Set {
    children: Vec<std::process::Child>,
    urls: Vec<String>,
}

impl Drop for Set {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        for c in &self.children {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

fn start_set(homes: &[PathBuf], dir: &Path) -> anyhow::Result<Set> {
    let exe = std::env::current_exe()?;
    let mut set = Set { children: Vec::new(), urls: Vec::new() };
    for (i, home) in homes.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("node-{i}.log")))?;
        let mut child = std::process::Command::new(&exe)
            .arg("node")
            .arg("--home")
            .arg(home)
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = lines.by_ref().map_while(Result::ok).find_map(|l| {
            l.strip_prefix("Listening on ").and_then(|r| r.split_whitespace().next()).map(str::to_string)
        });
        std::thread::spawn(move || for _ in lines {});
        set.children.push(child);
        match addr {
            Some(a) => set.urls.push(format!("http://{a}")),
            None => bail!("validator {i} exited; see {}", dir.join(format!("node-{i}.log")).display()),
        }
    }
    Ok(set)
}

pub async fn run(args: BftBenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cairn-bench-bft-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let total = args.rate * args.duration;
    println!("signing {total} ERC-20 transfers from {} senders...", args.senders);
    let workload_args = RpcBenchArgs {
        duration: args.duration,
        senders: args.senders,
        txs: total,
        batch: 1,
        concurrency: args.concurrency,
        anvil: None,
        no_anvil: true,
        json: None,
        commit_compare: None,
        fragment_compare: None,
    };
    let w = build_workload(&workload_args, &dir)?;
    let homes = crate::testnet::init(&crate::testnet::InitArgs {
        validators: args.validators,
        out: dir.join("set"),
        base_port: args.base_port,
        chain_id: 31337,
        dev_accounts: 10,
        genesis: Some(w.genesis.clone()),
        full_nodes: 0,
        rollups: Vec::new(),
        block_bytes: None,
        block_gas: None,
    })?;
    let set = start_set(&homes, &dir)?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    // Every validator decides before the load starts (a set of one makes no empty
    // blocks: it only has to answer).
    let ready = Instant::now() + Duration::from_secs(60);
    for url in &set.urls {
        loop {
            let h = crate::bench::rpc_call(&client, url, "eth_blockNumber", serde_json::json!([])).await.ok();
            if h.as_ref().and_then(|v| v.as_str()).is_some_and(|s| s != "0x0" || args.validators == 1) {
                break;
            }
            if Instant::now() > ready {
                bail!("{url} decides no block");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sealed_at: Arc<Mutex<HashMap<alloy_primitives::B256, Instant>>> = Arc::default();
    let watcher = watch_blocks(&client, &set.urls[0], &stop, &sealed_at).await?;
    let cpu_before: Vec<Duration> = set.children.iter().map(|c| cpu_time(c.id())).collect();

    let n = w.raw.len();
    let times: Arc<Vec<Mutex<SentAnswered>>> = Arc::new((0..n).map(|_| Mutex::new(None)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let raw = Arc::new(w.raw.clone());
    let urls = Arc::new(set.urls.clone());
    let t0 = Instant::now() + Duration::from_millis(100);
    let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, urls, next, raw, times) = (client.clone(), urls.clone(), next.clone(), raw.clone(), times.clone());
        let (failed, first_error) = (failed.clone(), first_error.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= raw.len() {
                    break;
                }
                tokio::time::sleep_until((t0 + gap * i as u32).into()).await;
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"cairn_sendRawTransactionPreconfirmed","params":["{}"]}}"#,
                    raw[i]
                );
                let sent = Instant::now();
                let reply = client
                    .post(&urls[i % urls.len()])
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = match reply {
                    Ok(r) => match r.bytes().await {
                        Ok(body) if body.windows(9).any(|w| w == br#""result":"#) => true,
                        Ok(body) => {
                            let text = String::from_utf8_lossy(&body).chars().take(300).collect::<String>();
                            first_error.lock().expect("lock").get_or_insert(text);
                            false
                        }
                        Err(e) => {
                            first_error.lock().expect("lock").get_or_insert_with(|| e.to_string());
                            false
                        }
                    },
                    Err(e) => {
                        first_error.lock().expect("lock").get_or_insert_with(|| e.to_string());
                        false
                    }
                };
                if ok {
                    *times[i].lock().expect("lock") = Some((sent, Instant::now()));
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for wk in workers {
        wk.await?;
    }
    let send_seconds = t0.elapsed().as_secs_f64();
    let preconfirmed = times.iter().filter(|t| t.lock().expect("lock").is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && sealed_at.lock().expect("lock").len() < preconfirmed {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.context("block watcher")?;
    let cpu_after: Vec<Duration> = set.children.iter().map(|c| cpu_time(c.id())).collect();
    let sealed_at = sealed_at.lock().expect("lock").clone();
    let (mut pre, mut decided) = (Vec::new(), Vec::new());
    for (i, h) in w.hashes.iter().enumerate() {
        let Some((sent, answered)) = *times[i].lock().expect("lock") else { continue };
        pre.push(answered.duration_since(sent).as_secs_f64() * 1e3);
        if let Some(s) = sealed_at.get(h) {
            decided.push(s.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
    }
    if let Some(e) = first_error.lock().expect("lock").as_ref() {
        eprintln!("first failure: {e}");
    }
    let included = decided.len();
    let (p50, p99, p999) = percentiles(pre);
    let (d50, d99, d999) = percentiles(decided);
    let cpu_ms_per_tx: Vec<f64> = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|(b, a)| a.saturating_sub(*b).as_secs_f64() * 1e3 / included.max(1) as f64)
        .collect();
    let f = Figures {
        validators: args.validators,
        offered_per_sec: args.rate,
        sent: n,
        preconfirmed,
        failed: failed.load(Ordering::Relaxed),
        included,
        included_per_sec: included as f64 / send_seconds,
        preconf_p50_ms: p50,
        preconf_p99_ms: p99,
        preconf_p999_ms: p999,
        decided_p50_ms: d50,
        decided_p99_ms: d99,
        decided_p999_ms: d999,
        cpu_ms_per_tx,
    };
    println!(
        "{} validator(s) | offered {} tx/s, preconfirmed {} of {}, failed {}, included {} ({:.0} tx/s)",
        f.validators, f.offered_per_sec, f.preconfirmed, f.sent, f.failed, f.included, f.included_per_sec
    );
    println!("send -> preconfirmation  p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  p99.9 {p999:>7.1} ms");
    println!("send -> decided (sealed) p50 {d50:>7.1} ms  p99 {d99:>7.1} ms  p99.9 {d999:>7.1} ms");
    let cpu: Vec<String> = f.cpu_ms_per_tx.iter().map(|c| format!("{c:.3}")).collect();
    println!("CPU ms per included transaction, per validator: {}", cpu.join(", "));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&f)?)?;
    }
    drop(set);
    if args.keep {
        println!("validators' homes and logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
