//! `cairn node --home DIR` for a home of a shared set (`cairn testnet init --rollups`):
//! the validator orders the rollups' transactions without executing them
//! (`cairn_sequencer::Lazy`, `docs/SHARED.md`) under the same Malachite consensus as a
//! single rollup's set, and serves the shared node's JSON-RPC.

use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

use cairn_mempool::lanes::LaneConfig;
use cairn_sequencer::{Lazy, SharedConfig};

use cairn_primitives::network::NetworkGenesis;

use crate::testnet::NodeConfig;

/// Largest accepted transaction, in bytes (as `cairn dev`'s default).
const MAX_TX_SIZE: usize = 128 * 1024;
/// Largest gas limit of one transaction (as `cairn dev`'s default).
const TX_GAS_CAP: u64 = 30_000_000;

/// Runs the node of a home whose genesis is `genesis`, config `node` and key `key`
/// (`None`: a full node of the set).
pub async fn run(
    genesis: NetworkGenesis,
    node: NodeConfig,
    key: Option<alloy_signer_local::PrivateKeySigner>,
    cfg: &crate::config::DevConfig,
    bft: cairn_consensus::BftConfig,
    execute: &[u64],
) -> anyhow::Result<()> {
    for ns in execute {
        if genesis.rollup(*ns).is_none() {
            let known: Vec<u64> = genesis.rollups.iter().map(|r| r.chain_id).collect();
            anyhow::bail!("--execute {ns}: not a rollup of this set (its rollups: {known:?})");
        }
    }
    let config = SharedConfig {
        chain_id: genesis.chain_id,
        rollups: genesis.rollups.clone(),
        lanes: {
            let d = LaneConfig::default();
            LaneConfig {
                block_bytes: genesis.block_bytes.unwrap_or(d.block_bytes),
                block_gas: genesis.block_gas.unwrap_or(d.block_gas),
                ..d
            }
        },
        max_tx_size: MAX_TX_SIZE,
        tx_gas_cap: TX_GAS_CAP,
        fragment_interval: Duration::from_millis(node.fragment_interval_ms.max(1)),
    };
    let dir = cfg.datadir.join("shared");
    let lazy = Arc::new(
        Lazy::open(&dir, config, key)
            .with_context(|| format!("opening the shared node's data in {}", dir.display()))?,
    );
    // The rollups this validator executes: a chain each, fed every decided block.
    let mut sealers = Vec::new();
    if !execute.is_empty() {
        let alloc = genesis.alloc()?;
        let mut chains = Vec::new();
        for &ns in execute {
            let (chain, sealer) = open_executed(&dir.join("exec").join(ns.to_string()), ns, &alloc)?;
            chains.push((ns, chain));
            sealers.push(sealer);
        }
        let lazy = lazy.clone();
        tokio::task::spawn_blocking(move || lazy.set_executors(chains))
            .await?
            .context("catching the executed rollups up with the decided blocks")?;
    }
    // Evidence is kept against the set's validators only, and gossiped to the others.
    lazy.set_accountable(Some(bft.validators.validators().iter().map(|v| v.address).collect()));
    if !node.peer_rpc.is_empty() {
        let (tx, rx) = tokio::sync::mpsc::channel(cairn_sequencer::RELAY_QUEUE);
        lazy.set_relay(tx);
        tokio::spawn(crate::relay::run(rx, node.peer_rpc.clone()));
        let (tx, rx) = tokio::sync::mpsc::channel(crate::relay::EVIDENCE_QUEUE);
        lazy.set_evidence_hook(Some(Box::new(move |record| {
            if tx.try_send(record).is_err() {
                tracing::warn!("the evidence gossip queue is full: a record is not gossiped");
            }
        })));
        tokio::spawn(crate::relay::evidence(rx, node.peer_rpc.clone()));
    }
    let (addr, server) =
        cairn_rpc::start_shared(node.rpc, lazy.clone(), serde_json::to_value(&genesis)?, Default::default())
            .await
            .with_context(|| format!("binding JSON-RPC to {}", node.rpc))?;
    // Decided blocks go to the DA layer in batches (served by `cairn_getDaBatch`): the
    // home's `[da]`, by default the local store.
    let da_dir = dir.join("da");
    let poster = crate::dev::start_poster(cfg, lazy.clone(), da_dir.clone()).await?;
    let p2p = bft.listen;
    let n = bft.validators.validators().len();
    let engine =
        cairn_consensus::start(bft, lazy.clone()).await.with_context(|| format!("starting consensus on {p2p}"))?;
    let who = match lazy.address() {
        Some(a) => format!("validator {a}"),
        None => "full node".into(),
    };
    println!("Cairn {who} of a shared set of {n} (orders without executing; BFT on Malachite, P2P on {p2p})");
    println!("  set chain id  {}", genesis.chain_id);
    for r in &genesis.rollups {
        println!(
            "  rollup        chain id {} (weight {}, fee floor {} wei/gas)",
            r.chain_id, r.weight, r.min_fee_per_gas
        );
    }
    println!("  decided       height {}", lazy.decided_height());
    println!("  data          {}", dir.display());
    match lazy.da() {
        Some(da) if da.status.lock().backend == "local" => {
            println!("  DA            local, batches in {}", da_dir.display())
        }
        Some(da) => println!("  DA            {}", da.status.lock().backend),
        None => println!("  DA            none"),
    }
    if !execute.is_empty() {
        println!("  executes      rollups {:?} (bundles within them are revert-protected)", lazy.executed());
    }
    println!("\nListening on {addr} (HTTP and WebSocket)");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    engine.stop().await;
    let _ = server.stop();
    server.stopped().await;
    if let Some(poster) = poster {
        tokio::task::spawn_blocking(move || poster.stop()).await?;
    }
    for sealer in sealers {
        tokio::task::spawn_blocking(move || sealer.stop()).await?;
    }
    Ok(())
}

/// The chain of rollup `chain_id` that a validator started with `--execute` keeps in
/// `dir` (as a follower's: the set's accounts at genesis, no development controls), with
/// its sealer.
fn open_executed(
    dir: &Path,
    chain_id: u64,
    alloc: &cairn_primitives::GenesisAlloc,
) -> anyhow::Result<(Arc<cairn_sequencer::Chain>, cairn_sequencer::Builder)> {
    let mut cfg = crate::config::DevArgs {
        datadir: Some(dir.to_path_buf()),
        chain_id: Some(chain_id),
        fragment_interval: Some(0),
        da: Some(crate::config::DaKind::None),
        ..Default::default()
    }
    .resolve()?;
    cfg.chain.dev = false;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (store, executor, committer) = crate::dev::open_parts(&cfg)?;
    let pool = cairn_mempool::PoolConfig::default();
    let chain = cairn_sequencer::Chain::open(
        store,
        &dir.join("pool.wal"),
        cfg.chain.clone(),
        alloc,
        pool,
        executor,
        committer,
        None,
    )
    .with_context(|| format!("opening rollup {chain_id}'s chain in {}", dir.display()))?;
    let sealer = cairn_sequencer::Builder::sealer_only(chain.clone(), false);
    Ok((chain, sealer))
}
