//! `cairn bench`: the benchmark subcommands (each prints figures; none is a test).

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Send pre-signed ERC-20 transfers over JSON-RPC to Cairn and to anvil; print tx/s,
    /// latency percentiles and the Cairn/anvil ratios.
    Rpc(crate::bench::RpcBenchArgs),
    /// Execute blocks sequentially and with the parallel executor (the 62 mainnet
    /// blocks, gigagas workloads); print speedups, Mgas/s and peak memory.
    Exec(crate::bench_exec::ExecBenchArgs),
    /// Incremental state root against a full recomputation on a large state in the
    /// real store (1M accounts, 10M slots by default); per-block times, memory, disk.
    Commit(crate::bench_commit::CommitBenchArgs),
    /// Sustained ERC-20 load through `cairn_sendRawTransactionPreconfirmed` at a fixed
    /// rate; latency from send to signed preconfirmation and to sealed block
    /// (p50/p99/p99.9).
    Preconf(crate::bench_preconf::PreconfBenchArgs),
    /// A local validator set (N `cairn node` processes) under sustained ERC-20 load spread
    /// over the validators: send → preconfirmation and send → decided latency, included
    /// tx/s, CPU per included transaction per validator.
    Bft(crate::bench_bft::BftBenchArgs),
    /// A shared set of validators ordering several rollups (lazy) with a follower
    /// executing one: ordered bytes and tx/s, send → soft latency, follower gas per CPU
    /// second.
    Shared(crate::bench_shared::SharedBenchArgs),
    /// A rollup follower replaying a stream of decided blocks against the parallel
    /// executor alone on the same blocks: Mgas/s of each and their ratio.
    Follow(crate::bench_follow::FollowBenchArgs),
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Rpc(args) => crate::bench::rpc(args).await,
        BenchCommand::Follow(args) => tokio::task::spawn_blocking(move || crate::bench_follow::run(args)).await?,
        BenchCommand::Exec(args) => tokio::task::spawn_blocking(move || crate::bench_exec::run(args)).await?,
        BenchCommand::Commit(args) => tokio::task::spawn_blocking(move || crate::bench_commit::run(args)).await?,
        BenchCommand::Preconf(args) => crate::bench_preconf::run(args).await,
        BenchCommand::Bft(args) => crate::bench_bft::run(args).await,
        BenchCommand::Shared(args) => crate::bench_shared::run(args).await,
    }
}
