//! `cairn node --home DIR`: runs a validator home written by `cairn testnet init`.
//!
//! A home of a single-validator set runs with `Solo` finality: its validator is the
//! sequencer. A home of a larger set runs a validator of that set: Malachite (BFT)
//! decides every block, the proposer of each round builds it, and the others execute
//! and check it (`docs/CONSENSUS.md`). Either way the node serves the full JSON-RPC on
//! the configured address, without `cairn dev`'s development controls. A home without
//! a validator key is a full node of a set: it follows consensus without voting
//! (executing and checking every block like a validator), serves the same RPC, and
//! relays the transactions its clients send to the validators.

use anyhow::{bail, Context};
use cairn_primitives::network::NetworkGenesis;
use clap::Args;
use std::path::PathBuf;

use crate::testnet::{NodeConfig, CONFIG_FILE};

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// A home written by `cairn testnet init` (config.toml, genesis.json, validator.key).
    #[arg(long, value_name = "DIR")]
    pub home: PathBuf,
    /// Test harness: this validator misbehaves on purpose, so that tests can check how
    /// the others react (`equivocate`: it streams two different signed fragments for
    /// the first position of each block it proposes). Never use it on a real chain.
    #[arg(long, value_name = "FAULT", hide = true, value_parser = ["equivocate"])]
    pub fault: Option<String>,
    /// A validator of a shared set also executes these rollups (chain ids,
    /// comma-separated), as a follower does: a bundle wholly within them is
    /// revert-protected and answered with an execution preconfirmation
    /// (`docs/SHARED.md`).
    #[arg(long, value_delimiter = ',', value_name = "CHAIN_ID,…")]
    pub execute: Vec<u64>,
}

/// What a home says, checked.
pub struct Home {
    pub config: NodeConfig,
    pub genesis: NetworkGenesis,
    /// The validator key; `None` for a full node.
    pub key: Option<alloy_signer_local::PrivateKeySigner>,
}

/// Reads and checks a home: its config, its genesis (the validator set's rules), and
/// that its key is one of the set's validators.
pub fn load(home: &std::path::Path) -> anyhow::Result<Home> {
    let path = home.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: NodeConfig = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let path = home.join(&config.genesis);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let genesis: NetworkGenesis =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    genesis.validate().with_context(|| format!("the validator set in {}", path.display()))?;
    if genesis.chain_id != config.chain_id {
        bail!("{CONFIG_FILE} says chain {} but the genesis is for chain {}", config.chain_id, genesis.chain_id);
    }
    let Some(key_file) = &config.validator_key else {
        if genesis.validators.len() < 2 {
            bail!(
                "this home has no validator key, and a set of one validator has no consensus for a full node to follow"
            );
        }
        return Ok(Home { config, genesis, key: None });
    };
    let path = home.join(key_file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let key: alloy_signer_local::PrivateKeySigner = text
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{} does not hold a secp256k1 private key in hex: {e}", path.display()))?;
    if !genesis.validators.iter().any(|v| v.address == key.address()) {
        bail!("the key in {} ({}) is not one of the genesis validators", path.display(), key.address());
    }
    Ok(Home { config, genesis, key: Some(key) })
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let home = load(&args.home)?;
    let n = home.genesis.validators.len();
    let mut dev_args = crate::config::DevArgs {
        datadir: Some(args.home.join("data")),
        chain_id: Some(home.config.chain_id),
        block_time: Some(home.config.block_time_ms),
        fragment_interval: Some(home.config.fragment_interval_ms),
        sequencer_key: home.config.validator_key.as_ref().map(|k| args.home.join(k)),
        ..Default::default()
    };
    if let Some(da) = &home.config.da {
        da.apply(&mut dev_args, &args.home);
    }
    let resolved = dev_args.resolve().context("the home's [da] settings")?;
    let mut cfg = resolved;
    cfg.listen = home.config.rpc;
    // A validator's chain is not a development chain: no state edits, no impersonation.
    cfg.chain.dev = false;
    let alloc = home.genesis.alloc()?;
    let who = match &home.key {
        Some(key) => format!("validator {}", key.address()),
        None => "full node".to_string(),
    };
    if n == 1 && !home.genesis.is_shared() {
        let title = format!("Cairn {who} (a set of one: Solo finality)");
        return crate::dev::serve(cfg, alloc, None, &title, None, None, None).await;
    }
    let data = args.home.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let bft = bft_config(&home, &data, &args)?;
    if bft.fault.is_some() {
        tracing::warn!("this validator runs with a fault (--fault): it misbehaves on purpose");
    }
    if home.genesis.is_shared() {
        return crate::shared::run(home.genesis, home.config, home.key, &cfg, bft, &args.execute).await;
    }
    if !args.execute.is_empty() {
        bail!("--execute names rollups of a shared set, and this home's set orders a single rollup (it executes it)");
    }
    let title =
        format!("Cairn {who} (a set of {n} validators: BFT consensus on Malachite, P2P on {})", home.config.p2p);
    let relay = home.config.peer_rpc.clone();
    crate::dev::serve(cfg, alloc, None, &title, None, Some((bft, relay)), None).await
}

/// The consensus settings of a home.
fn bft_config(home: &Home, data: &std::path::Path, args: &NodeArgs) -> anyhow::Result<cairn_consensus::BftConfig> {
    Ok(cairn_consensus::BftConfig {
        chain_id: home.config.chain_id,
        validators: cairn_consensus::ValidatorSet::new(&home.genesis)?,
        key: home.key.clone(),
        listen: home.config.p2p,
        peers: home.config.peers.clone(),
        wal: data.join("consensus.wal"),
        block_time: std::time::Duration::from_millis(home.config.block_time_ms),
        moniker: home.key.as_ref().map_or_else(|| "full-node".to_string(), |k| format!("validator-{}", k.address())),
        fault: args.fault.as_ref().map(|_| cairn_consensus::Fault::EquivocateFragments),
    })
}
