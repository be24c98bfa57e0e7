//! `cairn bench follow`: how fast a rollup follower replays the decided stream, against
//! the parallel executor's own speed on the same blocks, side by side in one process.
//!
//! The workload: `--blocks` blocks of `--txs` signed transactions each (ERC-20 transfers
//! of a token in genesis, or ETH transfers), every sender once per block, as a shared
//! set's decided blocks would carry them. Each sample runs, alternating:
//!
//! - **executor**: the parallel executor alone on the blocks (senders recovered
//!   beforehand, state in memory, replay mode), block after block;
//! - **follower**: `apply_decided` on a fresh follower chain in a temporary directory
//!   (decoding, sender recovery, execution in building mode, closing the block, the
//!   sealer computing roots and committing beside it, exactly as `cairn rollup`), timed
//!   from the first block to the last block applied, and to the last block sealed.
//!
//! Medians of `--samples` samples are printed, with the ratio of the follower's speed to
//! the executor's and the follower's time split into recovery, execution and the rest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, B256, U256};
use anyhow::Context;
use cairn_executor::{BlockContext, Executor, Mode, ParallelExecutor};
use cairn_primitives::{ChainConfig, GenesisAccount, GenesisAlloc, RecoveredTx, TxEnvelope};
use cairn_workload::{bench_signer, token_balance_slot, transfer_call, Artifacts, TxFactory};
use clap::Args;
use serde_json::json;

#[derive(Args, Clone)]
pub struct FollowBenchArgs {
    /// Blocks in the stream.
    #[arg(long, default_value_t = 20)]
    pub blocks: usize,
    /// Transactions per block (one per sender).
    #[arg(long, default_value_t = 2_000)]
    pub txs: usize,
    /// `erc20` (token transfers) or `eth` (plain transfers).
    #[arg(long, default_value = "erc20", value_parser = ["erc20", "eth"])]
    pub workload: String,
    /// Threads of the parallel executor (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Samples of each (medians reported).
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Directory for `follow.json`.
    #[arg(long, default_value = "target/bench-follow")]
    pub out: std::path::PathBuf,
}

const TOKEN: Address = Address::repeat_byte(0x70);

struct Workload {
    config: ChainConfig,
    alloc: GenesisAlloc,
    blocks: Vec<Vec<Bytes>>,
    gas: u64,
}

fn build(args: &FollowBenchArgs) -> anyhow::Result<Workload> {
    let config = ChainConfig { dev: false, ..ChainConfig::default() };
    let art = Artifacts::load_default()?;
    let signers: Vec<_> = (0..args.txs as u64).map(bench_signer).collect();
    let mut alloc = GenesisAlloc::default();
    let mut storage = std::collections::BTreeMap::new();
    let ether = U256::from(10u64).pow(U256::from(24u64));
    for s in &signers {
        alloc.accounts.insert(s.address(), GenesisAccount { balance: ether, ..Default::default() });
        storage.insert(B256::from(token_balance_slot(s.address())), B256::from(ether));
    }
    alloc.accounts.insert(TOKEN, GenesisAccount { code: art.token_runtime.clone(), storage, ..Default::default() });
    let f = TxFactory::new(config.chain_id);
    let erc20 = args.workload == "erc20";
    let mut blocks = Vec::with_capacity(args.blocks);
    for b in 0..args.blocks as u64 {
        let txs: Vec<Bytes> = std::thread::scope(|scope| {
            let halves: Vec<_> = signers
                .chunks(signers.len().div_ceil(2).max(1))
                .map(|chunk| {
                    let f = &f;
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|s| {
                                // A fresh recipient per transfer: independent transactions.
                                let seed = [&b.to_be_bytes()[..], s.address().as_slice()].concat();
                                let to = Address::from_slice(&alloy_primitives::keccak256(seed)[12..]);
                                let tx = if erc20 {
                                    f.call(s, b, TOKEN, transfer_call(to, U256::from(1)), 60_000)
                                } else {
                                    f.transfer_eth(s, b, to, U256::from(1))
                                };
                                tx.map(|t| Bytes::from(t.encoded_2718()))
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            halves.into_iter().map(|h| h.join().expect("signing thread")).collect::<Result<Vec<_>, _>>()
        })?
        .into_iter()
        .flatten()
        .collect();
        blocks.push(txs);
    }
    Ok(Workload { config, alloc, blocks, gas: 0 })
}

fn recover(raws: &[Bytes]) -> anyhow::Result<Vec<RecoveredTx>> {
    use alloy_consensus::transaction::SignerRecoverable;
    use alloy_eips::eip2718::Decodable2718;
    raws.iter()
        .map(|r| {
            let tx = TxEnvelope::decode_2718_exact(r)?;
            let sender = tx.recover_signer()?;
            Ok(alloy_consensus::transaction::Recovered::new_unchecked(tx, sender))
        })
        .collect()
}

/// The parallel executor alone: gas and time of every block.
fn run_executor(w: &Workload, recovered: &[Vec<RecoveredTx>], threads: usize) -> anyhow::Result<(u64, Duration)> {
    let exec = ParallelExecutor::new(threads);
    let mut state = cairn_primitives::InMemoryState::from_alloc(&w.alloc);
    let (mut gas_used, mut gas_limit, mut base_fee) = (0u64, w.config.gas_limit, w.config.initial_base_fee);
    let (mut gas, mut time) = (0u64, Duration::ZERO);
    for (i, txs) in recovered.iter().enumerate() {
        let number = i as u64 + 1;
        base_fee = w.config.next_base_fee(gas_used, gas_limit, base_fee);
        let ctx = BlockContext::for_chain(&w.config, number, 1_000 + number, base_fee, B256::repeat_byte(number as u8));
        let started = Instant::now();
        let out = exec.execute(&state, &ctx, txs, Mode::Replay).with_context(|| format!("block {number}"))?;
        time += started.elapsed();
        state.apply(&out.diff);
        gas += out.gas_used;
        gas_used = out.gas_used;
        gas_limit = ctx.gas_limit;
    }
    Ok((gas, time))
}

struct FollowFigures {
    gas: u64,
    applied: Duration,
    sealed: Duration,
    recover: Duration,
    execute: Duration,
}

/// A follower chain on the stream.
fn run_follower(w: &Workload, threads: usize) -> anyhow::Result<FollowFigures> {
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cairn-bench-follow-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let store = cairn_storage::Store::open(&dir.join("cairn.redb"))?;
    let chain = cairn_sequencer::Chain::open(
        store,
        &dir.join("pool.wal"),
        w.config.clone(),
        &w.alloc,
        cairn_mempool::PoolConfig::default(),
        Arc::new(ParallelExecutor::new(threads)),
        Arc::new(cairn_trie::IncrementalCommitter::new(threads)?),
        None,
    )?;
    let sealer = cairn_sequencer::Builder::sealer_only(chain.clone(), false);
    let mut f = FollowFigures {
        gas: 0,
        applied: Duration::ZERO,
        sealed: Duration::ZERO,
        recover: Duration::ZERO,
        execute: Duration::ZERO,
    };
    let started = Instant::now();
    for (i, txs) in w.blocks.iter().enumerate() {
        let number = i as u64 + 1;
        let a = cairn_sequencer::apply_decided(&chain, number, 1_000 + number, txs)?;
        anyhow::ensure!(
            a.rejected.is_empty(),
            "block {number}: {} rejected, e.g. {:?}",
            a.rejected.len(),
            a.rejected[0]
        );
        f.gas += a.gas_used;
        f.recover += a.recover;
        f.execute += a.execute;
    }
    f.applied = started.elapsed();
    chain.wait_sealed(w.blocks.len() as u64)?;
    f.sealed = started.elapsed();
    sealer.stop();
    drop(chain);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(f)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mgas(gas: u64, d: Duration) -> f64 {
    gas as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

pub fn run(args: FollowBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.blocks > 0 && args.txs > 0 && args.samples > 0,
        "--blocks, --txs and --samples must be positive"
    );
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    println!("signing {} blocks of {} {} transfers...", args.blocks, args.txs, args.workload);
    let mut w = build(&args)?;
    let (mut exec_t, mut applied_t, mut sealed_t, mut recover_t, mut execute_t, mut one_core_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for sample in 0..args.samples {
        // Sender recovery of every transaction on one core: the work a follower does
        // before it can execute (it checks every signature).
        let started = Instant::now();
        let recovered: Vec<Vec<RecoveredTx>> = w.blocks.iter().map(|b| recover(b)).collect::<anyhow::Result<_>>()?;
        one_core_t.push(started.elapsed());
        let (gas, t) = run_executor(&w, &recovered, threads)?;
        w.gas = gas;
        exec_t.push(t);
        let f = run_follower(&w, threads)?;
        anyhow::ensure!(f.gas == gas, "the follower used {} gas, the executor {gas}", f.gas);
        println!(
            "sample {}: executor {:.0} ms, follower applied {:.0} ms (recover {:.0}, execute {:.0}), sealed {:.0} ms",
            sample + 1,
            t.as_secs_f64() * 1e3,
            f.applied.as_secs_f64() * 1e3,
            f.recover.as_secs_f64() * 1e3,
            f.execute.as_secs_f64() * 1e3,
            f.sealed.as_secs_f64() * 1e3
        );
        applied_t.push(f.applied);
        sealed_t.push(f.sealed);
        recover_t.push(f.recover);
        execute_t.push(f.execute);
    }
    let (exec, applied, sealed) = (median(exec_t), median(applied_t), median(sealed_t));
    let (rec, ex, one_core) = (median(recover_t), median(execute_t), median(one_core_t));
    let gas = w.gas;
    println!(
        "\n{} blocks x {} {} txs, {:.1} Mgas in all, {threads} threads",
        args.blocks,
        args.txs,
        args.workload,
        gas as f64 / 1e6
    );
    println!("  executor alone          {:>8.0} Mgas/s", mgas(gas, exec));
    println!(
        "  follower, executed      {:>8.0} Mgas/s  ({:.0}% of the executor)",
        mgas(gas, applied),
        100.0 * exec.as_secs_f64() / applied.as_secs_f64()
    );
    println!("  follower, sealed        {:>8.0} Mgas/s", mgas(gas, sealed));
    println!(
        "  sender recovery: {:.0} ms on one core, {:.0} ms in the follower ({threads} threads); the executor alone: {:.0} ms",
        one_core.as_secs_f64() * 1e3,
        rec.as_secs_f64() * 1e3,
        exec.as_secs_f64() * 1e3
    );
    println!(
        "  follower's execution alone {:>8.0} Mgas/s  ({:.0}% of the executor: state in the store, building mode, the sealer beside it)",
        mgas(gas, ex),
        100.0 * exec.as_secs_f64() / ex.as_secs_f64()
    );
    println!(
        "  follower's time: recovery {:.0}%, execution {:.0}%, the rest (closing, waiting for the sealer) {:.0}%",
        100.0 * rec.as_secs_f64() / applied.as_secs_f64(),
        100.0 * ex.as_secs_f64() / applied.as_secs_f64(),
        100.0 * (applied.saturating_sub(rec + ex)).as_secs_f64() / applied.as_secs_f64()
    );
    std::fs::create_dir_all(&args.out)?;
    let report = json!({
        "blocks": args.blocks, "txs": args.txs, "workload": args.workload, "threads": threads, "gas": gas,
        "executorMs": exec.as_secs_f64() * 1e3, "followerAppliedMs": applied.as_secs_f64() * 1e3,
        "followerSealedMs": sealed.as_secs_f64() * 1e3, "recoverMs": rec.as_secs_f64() * 1e3,
        "executeMs": ex.as_secs_f64() * 1e3, "recoverOneCoreMs": one_core.as_secs_f64() * 1e3, "ratio": exec.as_secs_f64() / applied.as_secs_f64(),
    });
    std::fs::write(args.out.join("follow.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(())
}
