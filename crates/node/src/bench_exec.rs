//! `cairn bench exec`: the sequential and the parallel executor side by side on the
//! same blocks, in one process, alternating runs so that both see the same machine.
//!
//! Workloads (all state in memory, senders pre-recovered): the 62 historical mainnet
//! blocks of `../shared/data/mainnet-blocks`, and blocks of about a gigagas each of raw
//! ETH transfers, ERC-20 transfers, swaps over many independent pools and swaps on one
//! hot pool. Each timing is the median of `--samples` samples; a sample repeats the
//! block until it took at least `--min-sample-ms`, so microsecond blocks are timed too.
//! Peak memory is measured in one extra run of each executor with allocation counting
//! on (timed runs have it off).

use anyhow::{bail, Context};
use cairn_executor::{BlockContext, BlockOutput, Executor, Mode, ParallelExecutor, SequentialExecutor, Strategy};
use cairn_primitives::{RecoveredTx, StateView};
use cairn_workload::{gigagas, mainnet};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::alloc::peak_during;

#[derive(Args, Clone)]
pub struct ExecBenchArgs {
    /// Threads of the parallel executor (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timing samples per executor and block; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// A sample repeats the block until at least this many milliseconds passed.
    #[arg(long, default_value_t = 20)]
    pub min_sample_ms: u64,
    /// Gas per gigagas block.
    #[arg(long, default_value_t = 1_000_000_000)]
    pub gas: u64,
    /// Pools of the independent-swaps workload.
    #[arg(long, default_value_t = 1_000)]
    pub pools: u64,
    /// The parallel executor's strategy (default: the split, then the lanes, on two threads; Block-STM
    /// on more).
    #[arg(long, value_parser = ["lanes", "split", "block-stm"])]
    pub strategy: Option<String>,
    /// Only run workloads whose name contains this (e.g. `mainnet`, `erc20`, `swaps`).
    #[arg(long)]
    pub only: Option<String>,
    /// Also time each gigagas block cut into one contiguous chunk per thread, every chunk
    /// run by the sequential executor on its own thread against the state before the
    /// block, at once, with no coordination and no merge: not a correct execution, but
    /// the most the machine's threads give on that work (the ceiling of any parallel
    /// executor).
    #[arg(long)]
    pub ceiling: bool,
    /// Instead of timing the executors, profile each mainnet block's dependencies (each
    /// transaction's time and the locations it read and wrote, in sequential runs) and
    /// print the speedup an in-order schedule with perfect knowledge of them would get
    /// on 2, 4 and 8 threads: the bound the block's own dependencies set.
    #[arg(long)]
    pub dependencies: bool,
    /// Directory for `exec.json` and `exec-speedup.svg`.
    #[arg(long, default_value = "target/bench-exec")]
    pub out: PathBuf,
}

struct Figures {
    name: String,
    txs: usize,
    gas: u64,
    sequential: Duration,
    parallel: Duration,
    seq_peak: usize,
    par_peak: usize,
    executions: usize,
}

impl Figures {
    fn speedup(&self) -> f64 {
        self.sequential.as_secs_f64() / self.parallel.as_secs_f64()
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "name": self.name, "txs": self.txs, "gas": self.gas,
            "sequential_ms": self.sequential.as_secs_f64() * 1e3, "parallel_ms": self.parallel.as_secs_f64() * 1e3,
            "speedup": self.speedup(),
            "parallel_mgas_per_s": self.gas as f64 / self.parallel.as_secs_f64() / 1e6,
            "sequential_mgas_per_s": self.gas as f64 / self.sequential.as_secs_f64() / 1e6,
            "sequential_peak_bytes": self.seq_peak, "parallel_peak_bytes": self.par_peak,
            "parallel_executions": self.executions,
        })
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Time of one execution: a sample repeats it for at least `min` and divides.
fn sample(
    exec: &dyn Executor,
    state: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    min: Duration,
) -> Duration {
    let start = Instant::now();
    let mut runs = 0u32;
    while runs == 0 || start.elapsed() < min {
        let out = exec.execute(state, block, txs, Mode::Replay);
        std::hint::black_box(&out);
        runs += 1;
    }
    start.elapsed() / runs
}

/// One run of `txs` cut into `chunks` contiguous parts, each executed sequentially on
/// its own thread against `state`, all at once (see `--ceiling`); repeated for `min`.
fn chunked_sample(
    chunks: usize,
    state: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
    min: Duration,
) -> Duration {
    let size = txs.len().div_ceil(chunks.max(1)).max(1);
    let start = Instant::now();
    let mut runs = 0u32;
    while runs == 0 || start.elapsed() < min {
        std::thread::scope(|scope| {
            for part in txs.chunks(size) {
                scope.spawn(move || {
                    std::hint::black_box(SequentialExecutor.execute(state, block, part, Mode::Building))
                });
            }
        });
        runs += 1;
    }
    start.elapsed() / runs
}

fn measure(
    args: &ExecBenchArgs,
    parallel: &ParallelExecutor,
    name: &str,
    state: &dyn StateView,
    block: &BlockContext,
    txs: &[RecoveredTx],
) -> anyhow::Result<Figures> {
    let reference =
        SequentialExecutor.execute(state, block, txs, Mode::Replay).with_context(|| format!("{name}: sequential"))?;
    let (checked, stats) = parallel
        .execute_with_stats(state, block, txs, Mode::Replay, Default::default())
        .with_context(|| format!("{name}: parallel"))?;
    if checked != reference {
        bail!("{name}: the parallel output differs from the sequential output");
    }
    let min = Duration::from_millis(args.min_sample_ms);
    let (mut seq, mut par) = (Vec::new(), Vec::new());
    for _ in 0..args.samples.max(1) {
        seq.push(sample(&SequentialExecutor, state, block, txs, min));
        par.push(sample(parallel, state, block, txs, min));
    }
    let (_, seq_peak) = peak_during(|| SequentialExecutor.execute(state, block, txs, Mode::Replay).map(drop));
    let (_, par_peak) = peak_during(|| parallel.execute(state, block, txs, Mode::Replay).map(drop));
    Ok(Figures {
        name: name.to_string(),
        txs: txs.len(),
        gas: gas_of(&reference),
        sequential: median(seq),
        parallel: median(par),
        seq_peak,
        par_peak,
        executions: stats.executions,
    })
}

fn gas_of(out: &BlockOutput) -> u64 {
    out.gas_used
}

fn print(f: &Figures, threads: usize) {
    println!(
        "{:<30} {:>7} {:>13} {:>10.2} {:>10.2} {:>7.2}x {:>9.0} {:>3} {:>8.1} {:>8.1} {:>5.2}",
        f.name,
        f.txs,
        f.gas,
        f.sequential.as_secs_f64() * 1e3,
        f.parallel.as_secs_f64() * 1e3,
        f.speedup(),
        f.gas as f64 / f.parallel.as_secs_f64() / 1e6,
        threads,
        f.seq_peak as f64 / 1048576.0,
        f.par_peak as f64 / 1048576.0,
        f.par_peak as f64 / f.seq_peak.max(1) as f64,
    );
}

fn header() {
    println!(
        "{:<30} {:>7} {:>13} {:>10} {:>10} {:>8} {:>9} {:>3} {:>8} {:>8} {:>5}",
        "workload", "txs", "gas", "seq ms", "par ms", "speedup", "par Mgas/s", "thr", "seq MiB", "par MiB", "mem×"
    );
}

pub fn run(args: ExecBenchArgs) -> anyhow::Result<()> {
    if args.dependencies {
        return dependencies(&args);
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let mut parallel = ParallelExecutor::new(threads);
    match args.strategy.as_deref() {
        Some("lanes") => parallel = parallel.strategy(Strategy::Lanes),
        Some("split") => parallel = parallel.strategy(Strategy::Split),
        Some("block-stm") => parallel = parallel.strategy(Strategy::BlockStm),
        _ => {}
    }
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    std::fs::create_dir_all(&args.out)?;
    println!(
        "parallel executor: {threads} threads, {:?}, fallback to sequential below {} txs",
        parallel.strategy_used(),
        cairn_executor::DEFAULT_MIN_PARALLEL_TXS
    );
    header();

    let mut blocks = Vec::new();
    for dir in mainnet::block_dirs(&mainnet::default_dir())? {
        let name = format!("mainnet-{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or_default());
        if wanted(&name) {
            let block = mainnet::load(&dir)?;
            let f = measure(&args, &parallel, &name, &block.state, &block.context(), &block.txs)?;
            print(&f, threads);
            blocks.push(f);
        }
    }
    let mut total = None;
    if !blocks.is_empty() {
        let seq: Duration = blocks.iter().map(|f| f.sequential).sum();
        let par: Duration = blocks.iter().map(|f| f.parallel).sum();
        let t = Figures {
            name: "mainnet-total".into(),
            txs: blocks.iter().map(|f| f.txs).sum(),
            gas: blocks.iter().map(|f| f.gas).sum(),
            sequential: seq,
            parallel: par,
            seq_peak: blocks.iter().map(|f| f.seq_peak).max().unwrap_or(0),
            par_peak: blocks.iter().map(|f| f.par_peak).max().unwrap_or(0),
            executions: blocks.iter().map(|f| f.executions).sum(),
        };
        print(&t, threads);
        let worst =
            blocks.iter().min_by(|a, b| a.speedup().total_cmp(&b.speedup())).map(|f| (f.name.clone(), f.speedup()));
        if let Some((name, s)) = &worst {
            println!("worst block: {name} at {s:.2}x");
        }
        total = Some(t);
    }

    let mut gigagas = Vec::new();
    type Make = Box<dyn Fn(&ExecBenchArgs) -> Result<gigagas::ExecWorkload, cairn_workload::WorkloadError>>;
    let makers: Vec<(&str, Make)> = vec![
        ("raw-transfers", Box::new(|a| gigagas::raw_transfers(a.gas))),
        ("erc20-transfers", Box::new(|a| gigagas::erc20_transfers(a.gas))),
        ("independent-swaps", Box::new(|a| gigagas::swaps(a.gas, a.pools))),
        ("hot-pool-swaps", Box::new(|a| gigagas::swaps(a.gas, 1))),
    ];
    for (name, make) in makers {
        if !wanted(name) {
            continue;
        }
        let w = make(&args)?;
        let f = measure(&args, &parallel, &w.name, &w.state, &w.block, &w.txs)?;
        print(&f, threads);
        if args.ceiling {
            let min = Duration::from_millis(args.min_sample_ms);
            let (mut seq, mut chunked) = (Vec::new(), Vec::new());
            for _ in 0..args.samples.max(1) {
                seq.push(sample(&SequentialExecutor, &w.state, &w.block, &w.txs, min));
                chunked.push(chunked_sample(threads, &w.state, &w.block, &w.txs, min));
            }
            let (seq, chunked) = (median(seq), median(chunked));
            println!(
                "{:<30} ceiling: {threads} independent chunks {:.2} ms against sequential {:.2} ms = {:.2}x",
                "",
                chunked.as_secs_f64() * 1e3,
                seq.as_secs_f64() * 1e3,
                seq.as_secs_f64() / chunked.as_secs_f64()
            );
        }
        gigagas.push(f);
    }

    let report = json!({
        "threads": threads,
        "samples": args.samples,
        "mainnet_blocks": blocks.iter().map(Figures::json).collect::<Vec<_>>(),
        "mainnet_total": total.as_ref().map(Figures::json),
        "gigagas": gigagas.iter().map(Figures::json).collect::<Vec<_>>(),
    });
    let json_path = args.out.join("exec.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    let svg_path = args.out.join("exec-speedup.svg");
    std::fs::write(&svg_path, svg(&blocks, &gigagas, threads))?;
    println!("wrote {} and {}", json_path.display(), svg_path.display());
    Ok(())
}

/// `--dependencies`: the ideal schedules of the mainnet blocks.
fn dependencies(args: &ExecBenchArgs) -> anyhow::Result<()> {
    const THREADS: [usize; 3] = [2, 4, 8];
    println!(
        "{:<26} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "block", "txs", "busy ms", "chain ms", "ideal 2t", "ideal 4t", "ideal 8t", "deltas 2t"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (mut busy, mut chain, mut spans, mut deltas) =
        (Duration::ZERO, Duration::ZERO, [Duration::ZERO; 3], Duration::ZERO);
    let mut under = 0;
    for dir in mainnet::block_dirs(&mainnet::default_dir())? {
        let name = format!("mainnet-{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or_default());
        if !args.only.as_deref().is_none_or(|o| name.contains(o)) {
            continue;
        }
        let block = mainnet::load(&dir)?;
        let p = cairn_executor::dependency_profile(&block.state, &block.context(), &block.txs, args.samples, &THREADS)?;
        let ratio = |d: Duration| if d.is_zero() { 1.0 } else { p.busy.as_secs_f64() / d.as_secs_f64() };
        let two = p.makespans[0].1;
        under += usize::from(ratio(two) < 1.4);
        println!(
            "{name:<26} {:>6} {:>9.2} {:>9.2} {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x",
            p.included,
            ms(p.busy),
            ms(p.critical_path),
            ratio(two),
            ratio(p.makespans[1].1),
            ratio(p.makespans[2].1),
            ratio(p.makespans_with_deltas[0].1)
        );
        deltas += p.makespans_with_deltas[0].1;
        busy += p.busy;
        chain += p.critical_path;
        for (k, (_, d)) in p.makespans.iter().enumerate() {
            spans[k] += *d;
        }
    }
    let total = |d: Duration| busy.as_secs_f64() / d.as_secs_f64().max(f64::MIN_POSITIVE);
    println!(
        "{:<26} {:>6} {:>9.2} {:>9.2} {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x",
        "mainnet-total",
        "",
        ms(busy),
        ms(chain),
        total(spans[0]),
        total(spans[1]),
        total(spans[2]),
        total(deltas)
    );
    println!("blocks whose ideal 2-thread speedup is under 1.4x: {under}");
    Ok(())
}

/// A bar chart of speedup per block (mainnet blocks, then the gigagas workloads).
fn svg(blocks: &[Figures], gigagas: &[Figures], threads: usize) -> String {
    let bars: Vec<&Figures> = blocks.iter().chain(gigagas).collect();
    let (w, h, left, bottom, top) = (1200.0, 420.0, 50.0, 120.0, 30.0);
    let max = bars.iter().map(|f| f.speedup()).fold(2.0f64, f64::max).ceil();
    let plot_h = h - bottom - top;
    let y = |s: f64| top + plot_h * (1.0 - s / max);
    let step = (w - left - 10.0) / bars.len().max(1) as f64;
    let mut out = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='10'>\n\
         <rect width='100%' height='100%' fill='white'/>\n\
         <text x='{left}' y='18' font-size='14'>cairn bench exec: parallel speedup over sequential ({threads} threads)</text>\n"
    );
    let mut tick = 0.0;
    while tick <= max {
        out += &format!(
            "<line x1='{left}' x2='{}' y1='{y}' y2='{y}' stroke='#ddd'/><text x='5' y='{}'>{tick:.1}x</text>\n",
            w - 10.0,
            y(tick) + 3.0,
            y = y(tick)
        );
        tick += 0.5;
    }
    out += &format!("<line x1='{left}' x2='{}' y1='{y1}' y2='{y1}' stroke='black'/>\n", w - 10.0, y1 = y(1.0));
    for (i, f) in bars.iter().enumerate() {
        let x = left + i as f64 * step;
        let s = f.speedup();
        let color = if i >= blocks.len() {
            "#d95f02"
        } else if s < 1.0 {
            "#999"
        } else {
            "#1b9e77"
        };
        out += &format!(
            "<rect x='{x:.1}' y='{:.1}' width='{:.1}' height='{:.1}' fill='{color}'><title>{} {s:.2}x</title></rect>\n",
            y(s),
            (step - 2.0).max(1.0),
            (y(0.0) - y(s)).max(0.0),
            f.name
        );
        let label = f.name.trim_start_matches("mainnet-");
        out += &format!(
            "<text transform='translate({:.1},{:.1}) rotate(-70)' text-anchor='end' font-size='8'>{label}</text>\n",
            x + step / 2.0,
            y(0.0) + 6.0
        );
    }
    out + "</svg>\n"
}
