//! `cairn bench commit`: the incremental committer against a full recomputation, on a
//! large state in the real store.
//!
//! Builds a state of `--accounts` accounts, `--contracts` of which hold
//! `--slots / --contracts` storage slots each, in a redb store under `--dir` (committed
//! through the incremental committer itself, in chunks). Then, for each block size of
//! `--blocks` (changed keys: half account updates and new accounts, half storage writes
//! and deletions over random contracts), it times `--samples` blocks: the incremental
//! root computation (reads the previous trie from a snapshot, rayon over storage tries),
//! and the write of the block (flat state + trie nodes, one redb commit); after the
//! last block of each size, a full recomputation of the root from the flat state, on
//! one thread and on the committer's threads, both checked equal to the incremental
//! root. Trie nodes and accounts are read into the store's cache first, `--warmup`
//! blocks run unmeasured and the blocks of a size run back to back: the incremental
//! figures are those of a running node, and the full pass (which streams all storage
//! through the cache and the allocator) runs where it disturbs none of them. Prints
//! per-size medians, peak memory of the computation and the store's size on disk, and
//! writes `commit.json`.

use alloy_primitives::{keccak256, Address, U256};
use anyhow::{bail, Context};
use cairn_primitives::{AccountChange, AccountState, StateDiff};
use cairn_storage::Store;
use cairn_trie::{full_state_root, IncrementalCommitter, Phases};
use clap::Args;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::alloc::peak_during;

#[derive(Args, Clone)]
pub struct CommitBenchArgs {
    /// Accounts in the generated state.
    #[arg(long, default_value_t = 1_000_000)]
    pub accounts: u64,
    /// Storage slots in the generated state, spread evenly over `--contracts`.
    #[arg(long, default_value_t = 10_000_000)]
    pub slots: u64,
    /// Accounts (among the first) that hold storage.
    #[arg(long, default_value_t = 10_000)]
    pub contracts: u64,
    /// Changed keys per measured block, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "5000,20000,100000")]
    pub blocks: Vec<u64>,
    /// Blocks measured per size; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Unmeasured blocks (of the largest size) run first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Threads of the committer (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Skip the full recomputation (and its check) after each size's blocks: for
    /// profiling the incremental path alone.
    #[arg(long)]
    pub no_full: bool,
    /// Leave out the slots' values before the block (which the executor supplies with
    /// every block), so the committer reads old storage leaves back from the store.
    #[arg(long)]
    pub no_originals: bool,
    /// Also compute each measured block's root without the slots' original values
    /// (alternating which goes first) and print both medians.
    #[arg(long, conflicts_with = "no_originals")]
    pub compare_originals: bool,
    /// The store's page cache, in MiB, as `--cache-mb` of `cairn dev` [default: a
    /// quarter of the machine's memory, within 1024..=4096].
    #[arg(long)]
    pub cache_mb: Option<usize>,
    /// Where the store and `commit.json` go (the store is reused if it already holds the
    /// same state shape in this build's store format).
    #[arg(long, default_value = "target/bench-commit")]
    pub dir: PathBuf,
}

fn address(i: u64) -> Address {
    Address::from_word(keccak256(i.to_be_bytes()))
}

fn account(i: u64, version: u64) -> AccountState {
    AccountState { nonce: version, balance: U256::from(1_000_000_000u64 + i + version), ..Default::default() }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// What committing one block measured.
struct Committed {
    /// The root computation.
    computed: Duration,
    /// Its phases.
    phases: Phases,
    /// The block's write (flat state, trie nodes, one redb commit).
    written: Duration,
    root: alloy_primitives::B256,
    /// Peak memory of the computation.
    peak: usize,
    node_writes: usize,
}

/// Commits `diff` on top of the store's state.
fn commit(store: &Store, committer: &IncrementalCommitter, diff: &StateDiff) -> anyhow::Result<Committed> {
    let pre = store.reader()?;
    let started = Instant::now();
    let (update, peak) = peak_during(|| committer.compute(&pre, diff));
    let update = update?;
    let computed = started.elapsed();
    let started = Instant::now();
    let mut writer = store.writer()?;
    update.write(&mut writer, diff)?;
    writer.commit()?;
    Ok(Committed {
        computed,
        phases: update.phases,
        written: started.elapsed(),
        root: update.state_root,
        peak,
        node_writes: update.node_writes(),
    })
}

fn generate(args: &CommitBenchArgs, store: &Store, committer: &IncrementalCommitter) -> anyhow::Result<()> {
    let per_contract = args.slots / args.contracts.max(1);
    let started = Instant::now();
    // Accounts in chunks, then storage in chunks of contracts.
    const CHUNK: u64 = 100_000;
    let mut i = 0;
    while i < args.accounts {
        let mut diff = StateDiff::default();
        for a in i..(i + CHUNK).min(args.accounts) {
            diff.accounts.insert(address(a), AccountChange { info: Some(account(a, 0)), ..Default::default() });
        }
        commit(store, committer, &diff)?;
        i += CHUNK;
    }
    let contracts_per_chunk = (CHUNK / per_contract.max(1)).max(1);
    let mut c = 0;
    while c < args.contracts.min(args.accounts) {
        let mut diff = StateDiff::default();
        for a in c..(c + contracts_per_chunk).min(args.contracts) {
            let storage = (0..per_contract).map(|s| (U256::from(s), U256::from(s + 1))).collect();
            diff.accounts
                .insert(address(a), AccountChange { info: Some(account(a, 0)), storage, ..Default::default() });
        }
        commit(store, committer, &diff)?;
        c += contracts_per_chunk;
        if c % (contracts_per_chunk * 20) == 0 {
            eprintln!("  generated storage of {c} contracts ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    eprintln!("generated the state in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A block changing `keys` keys: half accounts (mostly updates, a tenth new accounts),
/// half storage slots (updates, a tenth new slots, a tenth deletions).
fn random_block(args: &CommitBenchArgs, keys: u64, rng: &mut rand::rngs::StdRng, version: u64) -> StateDiff {
    let per_contract = args.slots / args.contracts.max(1);
    let mut diff = StateDiff::default();
    let account_keys = keys / 2;
    for k in 0..account_keys {
        let a =
            if k % 10 == 0 { args.accounts + rng.gen_range(0..u64::MAX / 2) } else { rng.gen_range(0..args.accounts) };
        diff.accounts.insert(address(a), AccountChange { info: Some(account(a, version)), ..Default::default() });
    }
    let mut slot_keys = keys - account_keys;
    while slot_keys > 0 {
        let c = rng.gen_range(0..args.contracts);
        let change = diff
            .accounts
            .entry(address(c))
            .or_insert_with(|| AccountChange { info: Some(account(c, version)), ..Default::default() });
        let n = slot_keys.min(rng.gen_range(1..=20));
        for _ in 0..n {
            let roll = rng.gen_range(0..10);
            let slot =
                if roll == 0 { per_contract + rng.gen_range(0..1_000_000) } else { rng.gen_range(0..per_contract) };
            let value = if roll == 1 { U256::ZERO } else { U256::from(version * 1_000 + slot) };
            change.storage.insert(U256::from(slot), value);
        }
        slot_keys -= n;
    }
    diff
}

/// Fills in each changed slot's value before the block, read from the store (outside
/// the timed part), as the executor supplies it with every block it executes.
fn with_originals(store: &Store, mut diff: StateDiff) -> anyhow::Result<StateDiff> {
    use cairn_primitives::StateView as _;
    let reader = store.reader()?;
    for (address, change) in diff.accounts.iter_mut() {
        for slot in change.storage.keys() {
            let was = reader.storage(*address, *slot).map_err(|e| anyhow::anyhow!("reading a slot: {}", e.0))?;
            if !was.is_zero() {
                change.original.insert(*slot, was);
            }
        }
    }
    Ok(diff)
}

/// Median compute time of `diff` without and with its slots' original values, each run
/// `rounds` times (after one unmeasured run), alternating which goes first.
fn compare_originals(
    store: &Store,
    committer: &IncrementalCommitter,
    diff: &StateDiff,
    rounds: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let mut bare = diff.clone();
    bare.accounts.values_mut().for_each(|c| c.original.clear());
    let pre = store.reader()?;
    // One unmeasured run first: whichever went first would otherwise pay for bringing
    // the block's pages into the cache.
    std::hint::black_box(committer.compute(&pre, &bare)?);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for hinted in [round % 2 == 0, round % 2 != 0] {
            let started = Instant::now();
            let update = committer.compute(&pre, if hinted { diff } else { &bare })?;
            let took = started.elapsed();
            std::hint::black_box(update);
            if hinted {
                with.push(took)
            } else {
                without.push(took)
            }
        }
    }
    Ok((median(without), median(with)))
}

fn changed_keys(diff: &StateDiff) -> usize {
    diff.accounts.values().map(|c| 1 + c.storage.len()).sum()
}

pub fn run(args: CommitBenchArgs) -> anyhow::Result<()> {
    if args.contracts == 0 || args.contracts > args.accounts || args.samples == 0 {
        bail!("need 0 < --contracts <= --accounts and --samples > 0");
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let committer = IncrementalCommitter::new(threads)?;
    let shape = format!("{}-{}-{}", args.accounts, args.slots, args.contracts);
    let store_dir = args.dir.join(format!("state-{shape}"));
    // The marker names the store format: a state generated by a build of another
    // format is generated again rather than refused.
    let ready = store_dir.join(format!("ready-format-{}", cairn_storage::STORE_FORMAT));
    let fresh = !ready.exists();
    if fresh {
        let _ = std::fs::remove_dir_all(&store_dir);
    }
    std::fs::create_dir_all(&store_dir).with_context(|| format!("creating {}", store_dir.display()))?;
    let store = Store::open_with_cache(
        &store_dir.join("cairn.redb"),
        args.cache_mb.map_or_else(cairn_storage::default_cache_bytes, |mb| mb << 20),
    )?;
    if fresh {
        eprintln!(
            "generating {} accounts and {} slots over {} contracts in {} ...",
            args.accounts,
            args.slots,
            args.contracts,
            store_dir.display()
        );
        generate(&args, &store, &committer)?;
        std::fs::write(&ready, b"")?;
    }
    let reader = store.reader()?;
    let accounts = reader.account_count()?;
    let started = Instant::now();
    let warmed = reader.warm_trie()?;
    eprintln!(
        "warmed the cache: {:.0} MiB of trie nodes and accounts read in {:.1} s",
        warmed as f64 / (1u64 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    drop(reader);
    println!(
        "state: {accounts} accounts, {} slots over {} contracts; store {:.2} GiB; committer threads: {threads}",
        args.slots,
        args.contracts,
        dir_size(&store_dir) as f64 / (1u64 << 30) as f64
    );
    println!(
        "{:>9} {:>8} {:>14} {:>10} {:>10} {:>10} {:>11} {:>11} {:>9} {:>10} {:>10}",
        "keys",
        "nodes",
        "incremental",
        "write",
        "full 1 thr",
        format!("full {threads} thr"),
        "full1/incr",
        format!("full{threads}/incr"),
        "peak MiB",
        "disk GiB",
        "roots"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0c0117);
    let mut version = 1_000;
    // Unmeasured blocks first: the allocator and the store's cache reach their steady
    // state (a running node is past this point).
    for _ in 0..args.warmup {
        version += 1;
        let keys = args.blocks.iter().copied().max().unwrap_or(0);
        let diff = random_block(&args, keys, &mut rng, version);
        commit(&store, &committer, &if args.no_originals { diff } else { with_originals(&store, diff)? })?;
    }
    let mut results = Vec::new();
    for &keys in &args.blocks {
        let (mut incr, mut write, mut peaks, mut nodes) = (vec![], vec![], vec![], vec![]);
        let (mut full, mut full_par) = (vec![], vec![]);
        let mut phases: Vec<Phases> = Vec::new();
        let mut hinted: Vec<(Duration, Duration)> = Vec::new();
        let mut last_root = alloy_primitives::B256::ZERO;
        for _ in 0..args.samples {
            version += 1;
            let diff = random_block(&args, keys, &mut rng, version);
            let diff = if args.no_originals { diff } else { with_originals(&store, diff)? };
            if args.compare_originals {
                let (without, with) = compare_originals(&store, &committer, &diff, 3)?;
                eprintln!("  compute without originals {:.1} ms, with {:.1} ms", ms(without), ms(with));
                hinted.push((without, with));
            }
            let done = commit(&store, &committer, &diff)?;
            last_root = done.root;
            incr.push(done.computed);
            write.push(done.written);
            peaks.push(done.peak);
            nodes.push(done.node_writes);
            phases.push(done.phases);
            let p = done.phases;
            eprintln!(
                "  {} keys: incremental {:.1} ms (prepare {:.1}, storage tries {:.1}, account leaves {:.1}, \
                 account trie {:.1}), write {:.1} ms",
                changed_keys(&diff),
                ms(done.computed),
                ms(p.prepare),
                ms(p.storage_tries),
                ms(p.account_leaves),
                ms(p.account_trie),
                ms(done.written)
            );
        }
        if args.no_full {
            full.push(Duration::ZERO);
            full_par.push(Duration::ZERO);
        } else {
            // Both full recomputations: on one thread (alloy-trie's hash builder over the
            // flat state) and on the committer's threads (`IncrementalCommitter::full_root`),
            // the like-for-like baseline for an incremental root computed on those threads.
            let reader = store.reader()?;
            let started = Instant::now();
            let full_root = full_state_root(&reader)?;
            full.push(started.elapsed());
            let started = Instant::now();
            let par_root = committer.full_root(&reader)?;
            full_par.push(started.elapsed());
            eprintln!("  full recomputation {:.0} ms on 1 thread, {:.0} ms on {threads}", ms(full[0]), ms(full_par[0]));
            for root in [full_root, par_root] {
                if root != last_root {
                    bail!("incremental root {last_root} differs from the full recomputation {root}");
                }
            }
            // The full pass streamed all storage through the store's cache; bring the
            // trie back in, as on a running node (which never does a full pass).
            reader.warm_trie()?;
        }
        let (incr, write, full, full_par) = (median(incr), median(write), median(full), median(full_par));
        peaks.sort_unstable();
        nodes.sort_unstable();
        let peak_mib = peaks[peaks.len() / 2] as f64 / (1u64 << 20) as f64;
        let disk = dir_size(&store_dir) as f64 / (1u64 << 30) as f64;
        let ratio = full.as_secs_f64() / incr.as_secs_f64();
        let ratio_par = full_par.as_secs_f64() / incr.as_secs_f64();
        println!(
            "{keys:>9} {:>8} {:>11.1} ms {:>7.1} ms {:>7.0} ms {:>7.0} ms {:>10.1}x {:>10.1}x {:>9.1} {:>10.2} {:>10}",
            nodes[nodes.len() / 2],
            ms(incr),
            ms(write),
            ms(full),
            ms(full_par),
            ratio,
            ratio_par,
            peak_mib,
            disk,
            if args.no_full { "unchecked" } else { "equal" }
        );
        let phase = |f: fn(&Phases) -> Duration| ms(median(phases.iter().map(f).collect()));
        println!(
            "{keys:>9} phases (medians): prepare {:.1} ms, storage tries {:.1} ms, account leaves {:.1} ms, \
             account trie {:.1} ms",
            phase(|p| p.prepare),
            phase(|p| p.storage_tries),
            phase(|p| p.account_leaves),
            phase(|p| p.account_trie)
        );
        if !hinted.is_empty() {
            let without = median(hinted.iter().map(|h| h.0).collect());
            let with = median(hinted.iter().map(|h| h.1).collect());
            println!(
                "{keys:>9} compute without the slots' original values {:.1} ms, with {:.1} ms ({:.2}x)",
                ms(without),
                ms(with),
                without.as_secs_f64() / with.as_secs_f64()
            );
        }
        results.push(json!({
            "changed_keys": keys, "node_writes": nodes[nodes.len() / 2],
            "incremental_ms": ms(incr), "write_ms": ms(write), "full_ms": ms(full),
            "full_parallel_ms": ms(full_par), "full_over_incremental": ratio,
            "full_parallel_over_incremental": ratio_par, "peak_mib": peak_mib, "disk_gib": disk,
        }));
    }
    let out = json!({
        "accounts": accounts, "slots": args.slots, "contracts": args.contracts, "threads": threads,
        "samples": args.samples, "results": results,
    });
    std::fs::write(args.dir.join("commit.json"), serde_json::to_string_pretty(&out)?)?;
    println!("wrote {}", args.dir.join("commit.json").display());
    Ok(())
}
