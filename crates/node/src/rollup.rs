//! `cairn rollup --chain-id X --sequencer URL[,URL…] --datadir D`: a follower node of
//! one rollup of a shared set (`docs/SHARED.md`).
//!
//! It follows the set's decided blocks for namespace X, pushed over WebSocket
//! (`cairn_subscribeDecided`, from the height after its newest block, so a gap after a
//! disconnection or a restart is pulled first), checks each block's commit certificate
//! against the set's validators (never trusting the sequencer node it reads from) and
//! that the transactions it got are exactly the block's of namespace X, then executes
//! them (`cairn_sequencer::apply_decided`) and serves the rollup's full `eth_*` RPC.
//! `eth_sendRawTransaction` checks a transaction against the follower's state and
//! forwards it to the set.
//!
//! The set's genesis (validators, rollups, accounts) comes from `--genesis FILE`, else
//! from the first sequencer URL on first start (kept as `set-genesis.json` in the data
//! directory and used from then on: trust on first use, documented).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use cairn_consensus::ValidatorSet;
use cairn_primitives::network::NetworkGenesis;
use clap::Args;
use serde_json::{json, Value};

use crate::follower::{http_url, Follow};

#[derive(Args, Debug, Clone)]
pub struct RollupArgs {
    /// The rollup (namespace) to follow: its chain id, one of the set's rollups.
    #[arg(long)]
    pub chain_id: u64,
    /// JSON-RPC / WebSocket URLs of the set's validators (comma-separated); the
    /// follower reads from the first that answers and forwards transactions to them.
    #[arg(long, value_delimiter = ',', required = true, value_name = "URL,…")]
    pub sequencer: Vec<String>,
    /// Directory for the rollup's store.
    #[arg(long, value_name = "DIR")]
    pub datadir: PathBuf,
    /// Port for HTTP and WebSocket JSON-RPC (0 picks a free port) [default: 8545].
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Address to serve JSON-RPC on [default: 127.0.0.1].
    #[arg(long = "http.addr", value_name = "IP")]
    pub http_addr: Option<IpAddr>,
    /// The set's genesis.json (as `cairn testnet init` writes it) [default: fetched from
    /// the first sequencer URL on first start and kept in the data directory].
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Follow the set from its data-availability layer alone (the batches the sequencer
    /// URLs serve), not from its decided stream: slower (a batch a second), same blocks.
    #[arg(long)]
    pub from_da: bool,
}

async fn fetch_genesis(url: &str) -> anyhow::Result<NetworkGenesis> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "cairn_getGenesis", "params": []});
    let r: Value = reqwest::Client::new().post(http_url(url)).json(&body).send().await?.json().await?;
    if let Some(e) = r.get("error") {
        bail!("{url} did not give the set's genesis: {e}");
    }
    Ok(serde_json::from_value(r["result"].clone())?)
}

pub async fn run(args: RollupArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.datadir).with_context(|| format!("creating {}", args.datadir.display()))?;
    let kept = args.datadir.join("set-genesis.json");
    let genesis: NetworkGenesis = match (&args.genesis, kept.exists()) {
        (Some(path), _) => {
            serde_json::from_slice(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        (None, true) => {
            serde_json::from_slice(&std::fs::read(&kept)?).with_context(|| format!("parsing {}", kept.display()))?
        }
        (None, false) => {
            let g = fetch_genesis(&args.sequencer[0]).await?;
            tracing::warn!(url = %args.sequencer[0], "the set's genesis was fetched from a sequencer node and is trusted from now on");
            g
        }
    };
    genesis.validate().context("the set's genesis")?;
    if !kept.exists() {
        std::fs::write(&kept, serde_json::to_string_pretty(&genesis)? + "\n")?;
    }
    if genesis.rollup(args.chain_id).is_none() {
        let known: Vec<u64> = genesis.rollups.iter().map(|r| r.chain_id).collect();
        bail!("chain id {} is not a rollup of this set (its rollups: {known:?})", args.chain_id);
    }
    let validators = Arc::new(ValidatorSet::new(&genesis)?);
    let mut cfg = crate::config::DevArgs {
        datadir: Some(args.datadir.clone()),
        chain_id: Some(args.chain_id),
        port: args.port,
        http_addr: args.http_addr,
        fragment_interval: Some(0),
        da: Some(crate::config::DaKind::None),
        ..Default::default()
    }
    .resolve()?;
    cfg.chain.dev = false;
    let alloc = genesis.alloc()?;
    let follow = Follow {
        urls: args.sequencer.clone(),
        namespace: args.chain_id,
        set_chain_id: genesis.chain_id,
        validators,
        from_da: args.from_da,
    };
    let title = format!(
        "Cairn rollup follower: chain {} of the shared set {} ({} validators), following {}",
        args.chain_id,
        genesis.chain_id,
        genesis.validators.len(),
        args.sequencer.join(", ")
    );
    crate::dev::serve(cfg, alloc, None, &title, None, None, Some(follow)).await
}
