//! `cairn dev`: wires store, chain, builder and RPC together and runs until a signal.

use anyhow::Context;
use cairn_executor::{Executor, ParallelExecutor, SequentialExecutor};
use cairn_mempool::PoolConfig;
use cairn_primitives::{dev_accounts, load_genesis_file, DevAccount, GenesisAlloc};
use cairn_rpc::{RpcLimits, ServerLimits};
use cairn_sequencer::{Builder, BuilderConfig, Chain, Ingress, Preconf};
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
        None => GenesisAlloc::dev(&accounts).with_predeploys(),
    };
    // `cairn dev` unlocks its development accounts and serves the test controls.
    let dev = cairn_rpc::DevMode { accounts: accounts.iter().map(|a| a.signer.clone()).collect() };
    let listed = cfg.genesis.is_none().then_some(accounts.as_slice());
    serve(cfg, alloc, Some(dev), "Cairn dev sequencer", listed, None, None).await
}

/// A rollup's store, executor and state committer.
pub(crate) type ChainParts = (Store, Arc<dyn Executor>, Arc<dyn StateCommitter>);

/// A rollup's store, executor and state committer as `cfg` sets them.
pub(crate) fn open_parts(cfg: &DevConfig) -> anyhow::Result<ChainParts> {
    let store = Store::open_with_cache(&cfg.datadir.join("cairn.redb"), cfg.cache_bytes)
        .with_context(|| format!("opening the store in {}", cfg.datadir.display()))?
        .with_state_history(cfg.state_history);
    let executor: Arc<dyn Executor> = if cfg.exec_threads > 1 {
        // The builder waits for these threads: same priority as the builder.
        Arc::new(ParallelExecutor::with_thread_start(cfg.exec_threads, cairn_sequencer::builder_priority))
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
        // Its threads work for the sealer, off the ordering path: same low priority.
        Arc::new(IncrementalCommitter::with_thread_start(cfg.commit_threads, || {
            cairn_sequencer::lower_priority(cairn_sequencer::SEALER_NICE)
        })?)
    };
    Ok((store, executor, committer))
}

/// Starts the DA poster `cfg.da` names for `source` (a chain's sealed blocks or a shared
/// set's decided ones): `local` in `local_dir`, `ethereum`, `celestia`, or none.
pub(crate) async fn start_poster<S: cairn_sequencer::PostSource + 'static>(
    cfg: &DevConfig,
    source: Arc<S>,
    local_dir: std::path::PathBuf,
) -> anyhow::Result<Option<cairn_sequencer::DaPoster>> {
    let (backend, poster): (Arc<dyn cairn_da::DaBackend>, cairn_sequencer::PosterConfig) = match cfg.da {
        crate::config::DaKind::None => return Ok(None),
        crate::config::DaKind::Local => {
            let store = cairn_da::LocalDa::open(&local_dir)
                .with_context(|| format!("opening the DA store {}", local_dir.display()))?;
            (Arc::new(store), Default::default())
        }
        crate::config::DaKind::Ethereum => {
            let e = cfg.ethereum.clone().context("--da ethereum settings")?;
            let dir = cfg.datadir.join("da-ethereum");
            let config = cairn_da::EthereumConfig { rpc: e.rpc.clone(), key: e.key, inbox: e.inbox, mode: e.mode, dir };
            let backend = tokio::task::spawn_blocking(move || cairn_da::EthereumDa::open(config))
                .await?
                .with_context(|| format!("connecting to the L1 at {}", e.rpc))?;
            // A batch must fit in one L1 transaction's blobs.
            (Arc::new(backend), cairn_sequencer::PosterConfig { max_bytes: 512 * 1024, ..Default::default() })
        }
        crate::config::DaKind::Celestia => celestia_backend(cfg).await?,
    };
    Ok(Some(tokio::task::spawn_blocking(move || cairn_sequencer::DaPoster::start(source, backend, poster)).await??))
}

/// The Celestia backend (`--da celestia`, built with `--features celestia`).
#[cfg(feature = "celestia")]
async fn celestia_backend(
    cfg: &DevConfig,
) -> anyhow::Result<(Arc<dyn cairn_da::DaBackend>, cairn_sequencer::PosterConfig)> {
    let c = cfg.celestia.clone().context("--da celestia settings")?;
    let config = cairn_da::CelestiaConfig {
        rpc: c.rpc.clone(),
        auth_token: c.token,
        grpc: c.grpc,
        key_hex: c.key_hex,
        namespace: c.namespace,
        dir: cfg.datadir.join("da-celestia"),
    };
    let backend = tokio::task::spawn_blocking(move || cairn_da::CelestiaDa::open(config))
        .await?
        .with_context(|| format!("connecting to Celestia at {}", c.rpc))?;
    let poster =
        cairn_sequencer::PosterConfig { max_bytes: cairn_da::celestia::MAX_CELESTIA_BATCH, ..Default::default() };
    Ok((Arc::new(backend), poster))
}

/// Without the `celestia` feature, `--da celestia` is refused when the flags are read.
#[cfg(not(feature = "celestia"))]
async fn celestia_backend(
    _: &DevConfig,
) -> anyhow::Result<(Arc<dyn cairn_da::DaBackend>, cairn_sequencer::PosterConfig)> {
    anyhow::bail!("this cairn was built without Celestia support (`--features celestia`)")
}

/// Runs a sequencer on `cfg` from genesis `alloc` until a signal: store, chain, builder
/// and RPC (with the development controls when `dev` is given). Prints `title`, the
/// accounts `listed`, and the address it listens on. With `bft`, the node is a
/// validator of a set: Malachite decides, and the chain builds only when consensus
/// asks it to (no slot loop).
pub(crate) async fn serve(
    cfg: DevConfig,
    alloc: GenesisAlloc,
    dev: Option<cairn_rpc::DevMode>,
    title: &str,
    listed: Option<&[DevAccount]>,
    bft: Option<(cairn_consensus::BftConfig, Vec<String>)>,
    follow: Option<crate::follower::Follow>,
) -> anyhow::Result<()> {
    let (store, executor, committer) = open_parts(&cfg)?;
    let pool = PoolConfig { max_txs: cfg.pool_size, ..PoolConfig::default() };
    let signer = load_or_create_key(&cfg.sequencer_key)?;
    let sequencer = signer.address();
    // The fragment log is always opened (and replayed), even with fragments off now:
    // promises made before a restart are kept either way.
    let preconf = Preconf { signer, dir: cfg.datadir.join("fragments") };
    let open = if bft.is_some() { Chain::open_replica } else { Chain::open };
    let chain = open(
        store,
        &cfg.datadir.join("pool.wal"),
        cfg.chain.clone(),
        &alloc,
        pool,
        executor,
        committer,
        Some(preconf),
    )?;
    let mut ingress = Ingress::new(chain.clone());
    if let Some((bft, _)) = bft.as_ref() {
        // Evidence is kept against the set's validators only.
        chain.set_accountable(Some(bft.validators.validators().iter().map(|v| v.address).collect()));
    }
    if let Some((_, peers)) = bft.as_ref().filter(|(_, peers)| !peers.is_empty()) {
        let (tx, rx) = tokio::sync::mpsc::channel(cairn_sequencer::RELAY_QUEUE);
        ingress = ingress.with_relay(tx);
        tokio::spawn(crate::relay::run(rx, peers.clone()));
        let (tx, rx) = tokio::sync::mpsc::channel(crate::relay::EVIDENCE_QUEUE);
        chain.set_evidence_hook(Some(Box::new(move |record| {
            if tx.try_send(record).is_err() {
                tracing::warn!("the evidence gossip queue is full: a record is not gossiped");
            }
        })));
        tokio::spawn(crate::relay::evidence(rx, peers.clone()));
    }
    if let Some(f) = &follow {
        let (tx, rx) = tokio::sync::mpsc::channel(crate::follower::FORWARD_QUEUE);
        ingress = ingress.with_forward(tx);
        tokio::spawn(crate::follower::forward(rx, f.urls.clone()));
    }
    let (addr, server) =
        cairn_rpc::start(cfg.listen, chain.clone(), ingress, RpcLimits::default(), ServerLimits::default(), dev)
            .await
            .with_context(|| format!("binding JSON-RPC to {}", cfg.listen))?;
    let builder_config = BuilderConfig {
        block_time: cfg.block_time,
        empty_blocks: cfg.empty_blocks,
        fragment_interval: cfg.fragment_interval,
        ..BuilderConfig::default()
    };
    let (builder, engine) = match bft {
        None if follow.is_some() => {
            let builder = Builder::sealer_only(chain.clone(), false);
            if let Some(f) = follow {
                crate::follower::start_firm(chain.clone(), f.clone(), cfg.datadir.clone());
                crate::follower::start(chain.clone(), f);
            }
            (builder, None)
        }
        None => (Builder::start(chain.clone(), builder_config), None),
        Some((bft, _)) => {
            let builder = Builder::sealer_only(chain.clone(), cfg.fragment_interval.is_some());
            let replica = Arc::new(cairn_sequencer::Replica::new(chain.clone(), builder_config)?);
            let p2p = bft.listen;
            let engine =
                cairn_consensus::start(bft, replica).await.with_context(|| format!("starting consensus on {p2p}"))?;
            (builder, Some(engine))
        }
    };

    let poster = start_poster(&cfg, chain.clone(), cfg.datadir.join("da")).await?;
    let (head, _) = chain.latest();
    println!("{title}");
    println!("  chain id     {}", chain.config.chain_id);
    println!("  datadir      {}", cfg.datadir.display());
    println!("  head         block {}", head.number);
    println!("  block time   {} ms, gas limit {}", cfg.block_time.as_millis(), chain.config.gas_limit);
    match cfg.fragment_interval {
        Some(i) => println!("  preconfs     a signed fragment every {} ms, sequencer {sequencer}", i.as_millis()),
        None => println!("  preconfs     off (--fragment-interval 0)"),
    }
    match cfg.da {
        crate::config::DaKind::Local => {
            println!("  DA           local, batches in {}", cfg.datadir.join("da").display())
        }
        crate::config::DaKind::None => println!("  DA           none (--da none)"),
        crate::config::DaKind::Celestia => {
            let c = cfg.celestia.as_ref().map(|c| c.rpc.clone()).unwrap_or_default();
            println!("  DA           celestia, node {c}")
        }
        crate::config::DaKind::Ethereum => {
            let e = cfg.ethereum.as_ref().map(|e| (e.rpc.clone(), e.inbox)).unwrap_or_default();
            println!("  DA           ethereum, L1 {} (inbox {})", e.0, e.1)
        }
    }
    if let Some(accounts) = listed {
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
    if let Some(engine) = engine {
        engine.stop().await;
    }
    let _ = server.stop();
    server.stopped().await;
    if let Some(poster) = poster {
        tokio::task::spawn_blocking(move || poster.stop()).await?;
    }
    tokio::task::spawn_blocking(move || builder.stop()).await?;
    Ok(())
}

/// The sequencer's signing key: read from `path` (hex), or created there (mode 0600)
/// on first start.
pub fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<alloy_signer_local::PrivateKeySigner> {
    if path.exists() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return text
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{} does not hold a secp256k1 private key in hex: {e}", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let signer = alloy_signer_local::PrivateKeySigner::random();
    write_new_key(path, &signer)?;
    tracing::info!(address = %signer.address(), path = %path.display(), "created the sequencer key");
    Ok(signer)
}

/// Writes `key` (hex) to a new file at `path`, readable by its owner only (mode 0600),
/// and syncs it; an existing file is never overwritten.
pub fn write_new_key(path: &std::path::Path, key: &alloy_signer_local::PrivateKeySigner) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "0x{}", alloy_primitives::hex::encode(key.to_bytes()))?;
    file.sync_all()?;
    Ok(())
}
