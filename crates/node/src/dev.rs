//! `cairn dev`: wires store, chain, builder and RPC together and runs until a signal.

use anyhow::Context;
use cairn_executor::{Executor, ParallelExecutor, SequentialExecutor};
use cairn_mempool::PoolConfig;
use cairn_primitives::{dev_accounts, load_genesis_file, GenesisAlloc};
use cairn_rpc::{RpcLimits, ServerLimits};
use cairn_sequencer::{Builder, BuilderConfig, Chain, Ingress};
use cairn_storage::Store;
use cairn_trie::{DisabledCommitter, IncrementalCommitter, StateCommitter};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::DevConfig;

pub async fn run(mut cfg: DevConfig) -> anyhow::Result<()> {
    let accounts = dev_accounts(&cfg.mnemonic, cfg.accounts)?;
    let alloc = match &cfg.genesis {
        Some(path) => {
            let (alloc, chain_id) = load_genesis_file(path)?;
            if let Some(id) = chain_id {
                cfg.chain.chain_id = id;
            }
            alloc
        }
        None => GenesisAlloc::dev(&accounts),
    };
    let store = Store::open(&cfg.datadir.join("cairn.redb"))
        .with_context(|| format!("opening the store in {}", cfg.datadir.display()))?
        .with_state_history(cfg.state_history);
    let pool = PoolConfig { max_txs: cfg.pool_size, ..PoolConfig::default() };
    let executor: Arc<dyn Executor> = if cfg.exec_threads > 1 {
        Arc::new(ParallelExecutor::new(cfg.exec_threads))
    } else {
        Arc::new(SequentialExecutor)
    };
    tracing::info!(
        threads = cfg.exec_threads,
        "executor: {}",
        if cfg.exec_threads > 1 { "parallel" } else { "sequential" }
    );
    let committer: Arc<dyn StateCommitter> = if cfg.no_state_root {
        tracing::warn!("state commitment is off (--no-state-root): headers carry a zero state root");
        Arc::new(DisabledCommitter)
    } else {
        Arc::new(IncrementalCommitter::new(cfg.exec_threads.max(1))?)
    };
    let chain =
        Chain::open(store, &cfg.datadir.join("pool.wal"), cfg.chain.clone(), &alloc, pool, executor, committer)?;
    let ingress = Ingress::new(chain.clone());
    let (addr, server) =
        cairn_rpc::start(cfg.listen, chain.clone(), ingress, RpcLimits::default(), ServerLimits::default())
            .await
            .with_context(|| format!("binding JSON-RPC to {}", cfg.listen))?;
    let builder = Builder::start(
        chain.clone(),
        BuilderConfig { block_time: cfg.block_time, empty_blocks: cfg.empty_blocks, ..BuilderConfig::default() },
    );

    let (head, _) = chain.latest();
    println!("Cairn dev sequencer");
    println!("  chain id     {}", chain.config.chain_id);
    println!("  datadir      {}", cfg.datadir.display());
    println!("  head         block {}", head.number);
    println!("  block time   {} ms, gas limit {}", cfg.block_time.as_millis(), chain.config.gas_limit);
    if cfg.genesis.is_none() {
        println!("\nAvailable accounts (10000 ETH each at genesis)");
        for (i, a) in accounts.iter().enumerate() {
            println!("  ({i}) {}  key 0x{}", a.address, alloy_primitives::hex::encode(a.signer.to_bytes()));
        }
    }
    println!("\nListening on {addr} (HTTP and WebSocket)");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    let _ = server.stop();
    server.stopped().await;
    tokio::task::spawn_blocking(move || builder.stop()).await?;
    Ok(())
}
