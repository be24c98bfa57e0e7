//! `cairn bench preconf`: latency of preconfirmations under sustained load.
//!
//! A `cairn dev` child process (fragments every `--interval` ms) receives pre-signed
//! ERC-20 transfers over JSON-RPC from this process at a fixed offered rate, each through
//! `cairn_sendRawTransactionPreconfirmed`; `concurrency` requests may be in flight. Per
//! transaction: time from the send call to the signed preconfirmation (the answer), and
//! to its block being sealed and visible over RPC (a block watcher polls the head every
//! 5 ms). Prints p50, p99 and p99.9 of both, the offered and achieved rates.

use anyhow::Context;
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bench::{build_workload, start_cairn, watch_blocks, RpcBenchArgs};

#[derive(Args, Clone)]
pub struct PreconfBenchArgs {
    /// Offered load, transactions per second.
    #[arg(long, default_value_t = 6_000)]
    pub rate: u64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Fragment interval of the node, milliseconds.
    #[arg(long, default_value_t = 10)]
    pub interval: u64,
    /// Block time of the node, milliseconds.
    #[arg(long, default_value_t = 200)]
    pub block_time: u64,
    /// Distinct sending accounts.
    #[arg(long, default_value_t = 2_000)]
    pub senders: u64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Extra flag for the node under test (repeatable), e.g. `--node-arg=--executor=sequential`.
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
struct Figures {
    interval_ms: u64,
    block_time_ms: u64,
    offered_per_sec: u64,
    sent: usize,
    preconfirmed: usize,
    failed: usize,
    achieved_per_sec: f64,
    sealed: usize,
    preconf_p50_ms: f64,
    preconf_p99_ms: f64,
    preconf_p999_ms: f64,
    sealed_p50_ms: f64,
    sealed_p99_ms: f64,
    sealed_p999_ms: f64,
    /// Admission to preconfirmation inside the node (status history, ms resolution).
    node_internal_sample: usize,
    node_internal_p50_ms: f64,
    node_internal_p99_ms: f64,
    node_internal_p999_ms: f64,
    /// Same sample: client send to the node's admission, and the node's preconfirmation
    /// to the client holding the answer (wall clocks of one machine, 1 ms resolution).
    before_admission_p50_ms: f64,
    before_admission_p99_ms: f64,
    after_preconf_p50_ms: f64,
    after_preconf_p99_ms: f64,
}

/// When a transaction was sent and when its preconfirmation came back.
/// Send and answer instants, and the same two as wall-clock milliseconds (to line up
/// with the node's status timestamps).
type SentAnswered = (Instant, Instant, f64, f64);

fn wall_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
}

pub(crate) fn percentiles(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let at = |p: f64| xs.get(((xs.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    (at(0.5), at(0.99), at(0.999))
}

pub async fn run(args: PreconfBenchArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cairn-bench-preconf-{}", std::process::id()));
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
    let interval = args.interval.to_string();
    let node_args: Vec<&str> = args.node_args.iter().map(String::as_str).collect();
    let block_time = args.block_time.to_string();
    let node = start_cairn(
        &w.genesis,
        &dir.join("cairn-data"),
        &[&["--fragment-interval", &interval, "--block-time", &block_time][..], &node_args[..]].concat(),
    )?;
    let url = node.url.clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let sealed_at: Arc<Mutex<HashMap<alloy_primitives::B256, Instant>>> = Arc::default();
    let watcher = watch_blocks(&client, &url, &stop, &sealed_at).await?;

    let n = w.raw.len();
    let times: Arc<Vec<Mutex<Option<SentAnswered>>>> = Arc::new((0..n).map(|_| Mutex::new(None)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let raw = Arc::new(w.raw.clone());
    let t0 = Instant::now() + Duration::from_millis(100);
    let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, url, next, raw, times) = (client.clone(), url.clone(), next.clone(), raw.clone(), times.clone());
        let (failed, first_error) = (failed.clone(), first_error.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= raw.len() {
                    break;
                }
                // paced: transaction i is due at t0 + i / rate
                tokio::time::sleep_until((t0 + gap * i as u32).into()).await;
                let body = format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"cairn_sendRawTransactionPreconfirmed","params":["{}"]}}"#,
                    raw[i]
                );
                let sent = Instant::now();
                let sent_wall = wall_ms();
                let reply = client.post(&url).header("content-type", "application/json").body(body).send().await;
                // Only success is needed here: look for the result member instead of
                // parsing the whole answer (this client shares the machine's cores).
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
                    *times[i].lock().expect("lock") = Some((sent, Instant::now(), sent_wall, wall_ms()));
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
    // wait (bounded) for the blocks of everything preconfirmed to be sealed
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && sealed_at.lock().expect("lock").len() < preconfirmed {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.await.context("block watcher")?;
    // Inside the node: admission to preconfirmation, from the status history of a
    // sample of the transactions (millisecond timestamps).
    let (mut inside, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
    let step = (n / 2_000).max(1);
    for (i, h) in w.hashes.iter().enumerate().step_by(step) {
        let Ok(status) =
            crate::bench::rpc_call(&client, &url, "cairn_getTransactionStatus", serde_json::json!([h])).await
        else {
            continue;
        };
        let at = |tier: &str| {
            status["history"].as_array()?.iter().find(|s| s["tier"] == tier).and_then(|s| s["at"].as_u64())
        };
        if let (Some(r), Some(p)) = (at("received"), at("preconfirmed")) {
            inside.push(p.saturating_sub(r) as f64);
            if let Some((_, _, sent_wall, answered_wall)) = *times[i].lock().expect("lock") {
                before.push((r as f64 - sent_wall).max(0.0));
                after.push((answered_wall - p as f64).max(0.0));
            }
        }
    }
    let sealed_at = sealed_at.lock().expect("lock").clone();
    let (mut pre, mut seal) = (Vec::new(), Vec::new());
    for (i, h) in w.hashes.iter().enumerate() {
        let Some((sent, answered, _, _)) = *times[i].lock().expect("lock") else { continue };
        pre.push(answered.duration_since(sent).as_secs_f64() * 1e3);
        if let Some(s) = sealed_at.get(h) {
            seal.push(s.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
    }
    if let Some(e) = first_error.lock().expect("lock").as_ref() {
        eprintln!("first failure: {e}");
    }
    let sealed = seal.len();
    let (p50, p99, p999) = percentiles(pre);
    let (s50, s99, s999) = percentiles(seal);
    let inside_n = inside.len();
    let (i50, i99, i999) = percentiles(inside);
    let (b50, b99, _) = percentiles(before);
    let (a50, a99, _) = percentiles(after);
    let f = Figures {
        interval_ms: args.interval,
        block_time_ms: args.block_time,
        offered_per_sec: args.rate,
        sent: n,
        preconfirmed,
        failed: failed.load(Ordering::Relaxed),
        achieved_per_sec: preconfirmed as f64 / send_seconds,
        sealed,
        preconf_p50_ms: p50,
        preconf_p99_ms: p99,
        preconf_p999_ms: p999,
        sealed_p50_ms: s50,
        sealed_p99_ms: s99,
        sealed_p999_ms: s999,
        node_internal_sample: inside_n,
        node_internal_p50_ms: i50,
        node_internal_p99_ms: i99,
        node_internal_p999_ms: i999,
        before_admission_p50_ms: b50,
        before_admission_p99_ms: b99,
        after_preconf_p50_ms: a50,
        after_preconf_p99_ms: a99,
    };
    println!(
        "fragments every {} ms, blocks every {} ms | offered {} tx/s, preconfirmed {} of {} ({:.0} tx/s), failed {}, sealed {}",
        f.interval_ms, f.block_time_ms, f.offered_per_sec, f.preconfirmed, f.sent, f.achieved_per_sec, f.failed, f.sealed
    );
    println!("send -> preconfirmation  p50 {:>7.1} ms  p99 {:>7.1} ms  p99.9 {:>7.1} ms", p50, p99, p999);
    println!("send -> sealed block     p50 {:>7.1} ms  p99 {:>7.1} ms  p99.9 {:>7.1} ms", s50, s99, s999);
    println!(
        "inside the node, admitted -> preconfirmed (sample of {inside_n}, 1 ms resolution)  p50 {i50:>5.1} ms  p99 {i99:>5.1} ms  p99.9 {i999:>5.1} ms"
    );
    println!(
        "same sample: send -> admitted  p50 {b50:>5.1} ms  p99 {b99:>5.1} ms | preconfirmed -> answer received  p50 {a50:>5.1} ms  p99 {a99:>5.1} ms"
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&f)?)?;
    }
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
