//! `cairn testnet init`: the homes of a local validator set.
//!
//! `cairn testnet init --validators N --out DIR` writes `DIR/node-0` … `DIR/node-{N-1}`,
//! each holding:
//! - `validator.key`: the validator's consensus key (secp256k1, hex, mode 0600), so that
//!   its signatures can be checked by an EVM contract with `ecrecover`;
//! - `genesis.json`: the set's genesis, the same bytes in every home (chain id, a fixed
//!   timestamp, the validators ordered by address with voting power 1 each, the number of
//!   prefunded development accounts as in `cairn dev`);
//! - `config.toml`: node `i` serves JSON-RPC and WebSocket on `P + i` and consensus P2P
//!   on `P + 100 + i` (`P` = `--base-port`, 8545 by default), and lists the other
//!   validators' P2P addresses as peers.

use anyhow::{bail, Context};
use cairn_primitives::network::{NetworkGenesis, MAX_VALIDATORS};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum TestnetCommand {
    /// Write one home per validator of a new local set.
    Init(InitArgs),
    /// Run a local set: N validators as child processes (homes written on first use),
    /// until Ctrl-C.
    Run(RunArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Where the homes are (written there if it is empty or missing; an existing set of
    /// the same size is run again, with its chain).
    #[arg(long, default_value = "cairn-testnet")]
    pub dir: PathBuf,
    /// Node i serves JSON-RPC on base-port + i and P2P on base-port + 100 + i.
    #[arg(long, default_value_t = 8545)]
    pub base_port: u16,
    #[arg(long, default_value_t = 31337)]
    pub chain_id: u64,
    /// A shared set ordering these rollups (chain ids, `ID[:WEIGHT]`, comma-separated),
    /// as `cairn testnet init --rollups`.
    #[arg(long, value_name = "ID[:WEIGHT],…", value_delimiter = ',', value_parser = parse_rollup)]
    pub rollups: Vec<cairn_primitives::network::Rollup>,
}

#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// Number of validators.
    #[arg(long)]
    pub validators: usize,
    /// Folder to write the homes into (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Node i serves JSON-RPC on base-port + i and P2P on base-port + 100 + i.
    #[arg(long, default_value_t = 8545)]
    pub base_port: u16,
    #[arg(long, default_value_t = 31337)]
    pub chain_id: u64,
    /// Prefunded development accounts (10,000 ether each).
    #[arg(long, default_value_t = 10)]
    pub dev_accounts: u32,
    /// A geth-style genesis file whose `alloc` (funded accounts, contracts) is added to
    /// the set's genesis.
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Full-node homes to write too, `DIR/full-0` …: no validator key; JSON-RPC on
    /// `P + N + j`, P2P on `P + 100 + N + j`.
    #[arg(long, default_value_t = 0)]
    pub full_nodes: usize,
    /// A shared set: the chain ids of the rollups it orders (each `ID` or `ID:WEIGHT`,
    /// weight 1 by default), comma-separated. Its validators order without executing;
    /// each rollup's nodes run `cairn rollup` (docs/SHARED.md).
    #[arg(long, value_name = "ID[:WEIGHT],…", value_delimiter = ',', value_parser = parse_rollup)]
    pub rollups: Vec<cairn_primitives::network::Rollup>,
    /// A shared set's byte budget per block, shared by the rollups' lanes by weight
    /// [default: 4 MiB].
    #[arg(long, value_name = "BYTES", requires = "rollups")]
    pub block_bytes: Option<u64>,
    /// A shared set's gas budget per block (sum of the transactions' gas limits), shared
    /// by the rollups' lanes by weight [default: 2,000,000,000].
    #[arg(long, value_name = "GAS", requires = "rollups")]
    pub block_gas: Option<u64>,
}

fn parse_rollup(s: &str) -> Result<cairn_primitives::network::Rollup, String> {
    let (id, weight) = match s.split_once(':') {
        Some((id, w)) => (id, w.trim().parse().map_err(|e| format!("weight {w:?}: {e}"))?),
        None => (s, 1),
    };
    let chain_id = id.trim().parse().map_err(|e| format!("chain id {id:?}: {e}"))?;
    Ok(cairn_primitives::network::Rollup { chain_id, weight, min_fee_per_gas: 0 })
}

/// A node's `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub chain_id: u64,
    /// JSON-RPC and WebSocket.
    pub rpc: SocketAddr,
    /// Consensus P2P.
    pub p2p: SocketAddr,
    /// The other validators' P2P addresses.
    pub peers: Vec<SocketAddr>,
    /// The other validators' JSON-RPC URLs: transactions clients send here are relayed
    /// to them (`cairn_relayRawTransaction`), so that whichever validator proposes next
    /// has them.
    #[serde(default)]
    pub peer_rpc: Vec<String>,
    /// Relative to the home.
    pub genesis: PathBuf,
    /// Relative to the home; absent for a full node.
    pub validator_key: Option<PathBuf>,
    pub block_time_ms: u64,
    pub fragment_interval_ms: u64,
    /// The data-availability layer this node posts decided blocks to (`[da]`; absent:
    /// `local`, under the home's data directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub da: Option<NodeDa>,
}

/// A node's `[da]` table: the same settings as `cairn dev`'s `--da` flags, e.g.
/// `layer = "ethereum"`, `l1-rpc = "http://127.0.0.1:8545"`, `l1-key = "l1.key"` (a file
/// relative to the home, or the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeDa {
    pub layer: crate::config::DaKind,
    #[serde(default)]
    pub l1_rpc: Option<String>,
    #[serde(default)]
    pub l1_key: Option<String>,
    #[serde(default)]
    pub inbox: Option<alloy_primitives::Address>,
    #[serde(default)]
    pub mode: Option<crate::config::DaModeArg>,
    #[serde(default)]
    pub celestia_rpc: Option<String>,
    #[serde(default)]
    pub celestia_grpc: Option<String>,
    #[serde(default)]
    pub celestia_key: Option<String>,
    #[serde(default)]
    pub celestia_token: Option<String>,
    #[serde(default)]
    pub celestia_namespace: Option<String>,
}

impl NodeDa {
    /// Sets `args`' DA flags from this table; key files are relative to `home`.
    pub fn apply(&self, args: &mut crate::config::DevArgs, home: &std::path::Path) {
        let in_home = |k: &Option<String>| {
            k.as_ref().map(|k| {
                let path = home.join(k);
                if path.exists() {
                    path.to_string_lossy().to_string()
                } else {
                    k.clone()
                }
            })
        };
        args.da = Some(self.layer);
        args.da_l1_rpc = self.l1_rpc.clone();
        args.da_l1_key = in_home(&self.l1_key);
        args.da_inbox = self.inbox;
        args.da_mode = self.mode;
        args.da_celestia_rpc = self.celestia_rpc.clone();
        args.da_celestia_grpc = self.celestia_grpc.clone();
        args.da_celestia_key = in_home(&self.celestia_key);
        args.da_celestia_token = self.celestia_token.clone();
        args.da_celestia_namespace = self.celestia_namespace.clone();
    }
}

pub const GENESIS_FILE: &str = "genesis.json";
pub const KEY_FILE: &str = "validator.key";
pub const CONFIG_FILE: &str = "config.toml";

pub fn run(cmd: TestnetCommand) -> anyhow::Result<()> {
    match cmd {
        TestnetCommand::Init(args) => {
            let homes = init(&args)?;
            println!("Wrote {} validator homes:", homes.len());
            for (i, home) in homes.iter().enumerate() {
                println!(
                    "  {}  JSON-RPC http://127.0.0.1:{}  P2P 127.0.0.1:{}",
                    home.display(),
                    args.base_port as usize + i,
                    args.base_port as usize + 100 + i
                );
            }
            for j in 0..args.full_nodes {
                let port = args.base_port as usize + homes.len() + j;
                println!(
                    "  {}  JSON-RPC http://127.0.0.1:{port}  P2P 127.0.0.1:{}  (full node)",
                    args.out.join(format!("full-{j}")).display(),
                    port + 100
                );
            }
            Ok(())
        }
        TestnetCommand::Run(args) => run_set(&args),
    }
}

/// `cairn testnet run`: starts every validator of the set as a child process, prints
/// their URLs, and stops them all (SIGTERM, then waits) on Ctrl-C, SIGTERM, or when one
/// of them exits.
fn run_set(args: &RunArgs) -> anyhow::Result<()> {
    use std::io::BufRead;
    let homes: Vec<PathBuf> = (0..args.validators).map(|i| args.dir.join(format!("node-{i}"))).collect();
    let existing = homes.iter().all(|h| h.join(CONFIG_FILE).exists())
        && !args.dir.join(format!("node-{}", args.validators)).exists();
    if existing {
        println!("Running the set in {} again", args.dir.display());
    } else {
        init(&InitArgs {
            validators: args.validators,
            out: args.dir.clone(),
            base_port: args.base_port,
            chain_id: args.chain_id,
            dev_accounts: 10,
            genesis: None,
            full_nodes: 0,
            rollups: args.rollups.clone(),
            block_bytes: None,
            block_gas: None,
        })?;
        println!("Wrote a set of {} validators in {}", args.validators, args.dir.display());
    }
    let exe = std::env::current_exe().context("locating the cairn binary")?;
    let mut children = Vec::with_capacity(homes.len());
    for (i, home) in homes.iter().enumerate() {
        let log_path = args.dir.join(format!("node-{i}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut child = std::process::Command::new(&exe)
            .arg("node")
            .arg("--home")
            .arg(home)
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting validator {i}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = lines.by_ref().map_while(Result::ok).find_map(|l| {
            l.strip_prefix("Listening on ").map(|r| r.split_whitespace().next().unwrap_or_default().to_string())
        });
        std::thread::spawn(move || for _ in lines {});
        children.push(child);
        match addr {
            Some(addr) => println!("  validator {i}  JSON-RPC http://{addr}  (log {})", log_path.display()),
            None => {
                stop_all(&mut children);
                bail!("validator {i} exited before listening; see {}", log_path.display());
            }
        }
    }
    println!("\nAll {} validators are running; Ctrl-C stops them.", children.len());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tick.tick() => {
                    if let Some(i) = children.iter_mut().position(|c| matches!(c.try_wait(), Ok(Some(_)))) {
                        eprintln!("validator {i} exited; stopping the set");
                        break;
                    }
                }
            }
        }
        anyhow::Ok(())
    })?;
    stop_all(&mut children);
    // The terminal (or pipe) may be gone by now: nothing to report then.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), b"Stopped.\n");
    Ok(())
}

#[allow(unsafe_code)]
fn stop_all(children: &mut [std::process::Child]) {
    for child in children.iter() {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}

/// Writes the homes; returns their paths.
pub fn init(args: &InitArgs) -> anyhow::Result<Vec<PathBuf>> {
    let n = args.validators;
    if n == 0 || n > MAX_VALIDATORS {
        bail!("--validators must be between 1 and {MAX_VALIDATORS}");
    }
    if args.base_port as usize + 100 + n + args.full_nodes > u16::MAX as usize {
        bail!("--base-port {} leaves no room for {n} validators' ports", args.base_port);
    }
    if args.out.exists() && std::fs::read_dir(&args.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: refusing to overwrite a set", args.out.display());
    }
    let keys: Vec<_> = (0..n).map(|_| alloy_signer_local::PrivateKeySigner::random()).collect();
    let mut validators: Vec<_> = keys.iter().map(|k| NetworkGenesis::validator_of(k, 1)).collect();
    validators.sort_by_key(|v| v.address);
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let alloc = match &args.genesis {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let g: alloy_genesis::Genesis =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            g.alloc
        }
        None => Default::default(),
    };
    let mut rollups = args.rollups.clone();
    rollups.sort_by_key(|r| r.chain_id);
    let genesis = NetworkGenesis {
        chain_id: args.chain_id,
        timestamp,
        validators,
        dev_accounts: args.dev_accounts,
        alloc,
        rollups,
        block_bytes: args.block_bytes,
        block_gas: args.block_gas,
    };
    genesis.validate().context("the generated validator set")?;
    let genesis_json = serde_json::to_string_pretty(&genesis)? + "\n";
    let addr = |port: usize| SocketAddr::from(([127, 0, 0, 1], port as u16));
    let base = args.base_port as usize;
    let mut homes = Vec::with_capacity(n);
    for (i, key) in keys.iter().enumerate() {
        let home = args.out.join(format!("node-{i}"));
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        crate::dev::write_new_key(&home.join(KEY_FILE), key)?;
        std::fs::write(home.join(GENESIS_FILE), &genesis_json)?;
        let config = NodeConfig {
            chain_id: args.chain_id,
            rpc: addr(base + i),
            p2p: addr(base + 100 + i),
            peers: (0..n).filter(|j| *j != i).map(|j| addr(base + 100 + j)).collect(),
            peer_rpc: (0..n).filter(|j| *j != i).map(|j| format!("http://{}", addr(base + j))).collect(),
            genesis: PathBuf::from(GENESIS_FILE),
            validator_key: Some(PathBuf::from(KEY_FILE)),
            block_time_ms: 200,
            fragment_interval_ms: cairn_sequencer::DEFAULT_FRAGMENT_INTERVAL.as_millis() as u64,
            da: None,
        };
        std::fs::write(home.join(CONFIG_FILE), toml::to_string(&config)?)?;
        homes.push(home);
    }
    for j in 0..args.full_nodes {
        let home = args.out.join(format!("full-{j}"));
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        std::fs::write(home.join(GENESIS_FILE), &genesis_json)?;
        let config = NodeConfig {
            chain_id: args.chain_id,
            rpc: addr(base + n + j),
            p2p: addr(base + 100 + n + j),
            peers: (0..n).map(|i| addr(base + 100 + i)).collect(),
            peer_rpc: (0..n).map(|i| format!("http://{}", addr(base + i))).collect(),
            genesis: PathBuf::from(GENESIS_FILE),
            validator_key: None,
            block_time_ms: 200,
            fragment_interval_ms: cairn_sequencer::DEFAULT_FRAGMENT_INTERVAL.as_millis() as u64,
            da: None,
        };
        std::fs::write(home.join(CONFIG_FILE), toml::to_string(&config)?)?;
    }
    Ok(homes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_one_consistent_home_per_validator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("set");
        let args = InitArgs {
            validators: 4,
            out: out.clone(),
            base_port: 9000,
            chain_id: 777,
            dev_accounts: 2,
            genesis: None,
            full_nodes: 0,
            rollups: Vec::new(),
            block_bytes: None,
            block_gas: None,
        };
        let homes = init(&args).expect("init");
        assert_eq!(homes.len(), 4);
        let genesis_bytes = std::fs::read(homes[0].join(GENESIS_FILE)).expect("genesis");
        let genesis: NetworkGenesis = serde_json::from_slice(&genesis_bytes).expect("parse");
        genesis.validate().expect("valid");
        assert_eq!((genesis.chain_id, genesis.validators.len(), genesis.dev_accounts), (777, 4, 2));
        let mut addresses = Vec::new();
        for (i, home) in homes.iter().enumerate() {
            assert_eq!(home, &out.join(format!("node-{i}")));
            assert_eq!(std::fs::read(home.join(GENESIS_FILE)).expect("genesis"), genesis_bytes, "the same genesis");
            let key_path = home.join(KEY_FILE);
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_path).expect("key").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let key: alloy_signer_local::PrivateKeySigner =
                std::fs::read_to_string(&key_path).expect("read").trim().parse().expect("a secp256k1 key");
            addresses.push(key.address());
            let config: NodeConfig =
                toml::from_str(&std::fs::read_to_string(home.join(CONFIG_FILE)).expect("config")).expect("parse");
            assert_eq!(config.rpc.port() as usize, 9000 + i);
            assert_eq!(config.p2p.port() as usize, 9100 + i);
            assert_eq!(config.peers.len(), 3);
            assert!(!config.peers.contains(&config.p2p), "a node is not its own peer");
            assert_eq!(config.validator_key.as_deref(), Some(std::path::Path::new(KEY_FILE)));
        }
        addresses.sort();
        let listed: Vec<_> = genesis.validators.iter().map(|v| v.address).collect();
        assert_eq!(listed, addresses, "the genesis lists exactly the homes' keys");
        // A set is never overwritten.
        let err = init(&args).expect_err("refused").to_string();
        assert!(err.contains("not empty"), "{err}");
        for bad in [0, MAX_VALIDATORS + 1] {
            let args = InitArgs { validators: bad, out: dir.path().join("x"), ..args.clone() };
            assert!(init(&args).is_err(), "{bad} validators");
        }
        let args = InitArgs { base_port: 65_500, out: dir.path().join("y"), ..args.clone() };
        assert!(init(&args).expect_err("no room").to_string().contains("no room"));
    }
}
