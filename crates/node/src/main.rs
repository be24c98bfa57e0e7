//! `cairn`: a decentralized, high-throughput sequencer for EVM rollups.

mod alloc;
mod bench;
mod bench_bft;
mod bench_commit;
mod bench_exec;
mod bench_follow;
mod bench_preconf;
mod bench_shared;
mod benches;
mod config;
mod dev;
mod follower;
mod node;
mod preconf;
mod relay;
mod rollup;
mod shared;
mod testnet;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

#[derive(Parser)]
#[command(name = "cairn", version, about = "Cairn: a high-throughput sequencer for EVM rollups")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-node rollup sequencer with prefunded development accounts.
    Dev(Box<config::DevArgs>),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(benches::BenchCommand),
    /// Preconfirmation tools: judge signed fragments (equivocation, broken promises).
    #[command(subcommand)]
    Preconf(preconf::PreconfCommand),
    /// Run a validator home written by `cairn testnet init`.
    Node(node::NodeArgs),
    /// A follower node of one rollup of a shared set: executes the rollup's part of the
    /// set's decided blocks and serves its JSON-RPC.
    Rollup(rollup::RollupArgs),
    /// A local validator set: `init` writes one home per validator.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
}

fn main() -> anyhow::Result<()> {
    alloc::tune();
    // Malachite's engine reports every vote and connection at `info`: its own warnings
    // and errors are kept, Cairn's `info`.
    const DEFAULT_LOG: &str = "info,arc_malachitebft_core_consensus=warn,arc_malachitebft_engine=warn,\
        arc_malachitebft_network=warn,arc_malachitebft_discovery=error,arc_malachitebft_sync=warn,libp2p=warn";
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG.into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Blocking RPC calls may decode DA blobs (KZG, 128 KiB blobs): more than the default
    // 2 MiB of stack.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(16 << 20).build()?;
    match cli.command {
        Command::Dev(args) => runtime.block_on(dev::run(args.resolve()?)),
        Command::Bench(cmd) => runtime.block_on(benches::run(cmd)),
        Command::Node(args) => runtime.block_on(node::run(args)),
        Command::Rollup(args) => runtime.block_on(rollup::run(args)),
        Command::Testnet(cmd) => testnet::run(cmd),
        Command::Preconf(cmd) => {
            let code = preconf::run(cmd)?;
            std::process::exit(code)
        }
    }
}
