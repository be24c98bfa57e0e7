//! `cairn dev` settings: command-line flags over a TOML file over defaults.

use alloy_primitives::Address;
use anyhow::{bail, Context};
use cairn_primitives::{ChainConfig, DEV_MNEMONIC};
use clap::Args;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `cairn dev`. Every flag can also be set in the `--config` TOML file under
/// the same name (e.g. `chain-id = 1234`, `"http.addr" = "0.0.0.0"`).
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DevArgs {
    /// TOML file with any of these settings; flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Directory for the chain's store (default: the per-user data directory, e.g.
    /// ~/.local/share/cairn/dev). Data here survives restarts.
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Address to serve JSON-RPC over HTTP and WebSocket on [default: 127.0.0.1].
    #[arg(long = "http.addr", value_name = "IP")]
    #[serde(rename = "http.addr")]
    pub http_addr: Option<IpAddr>,
    /// Port for HTTP and WebSocket JSON-RPC (0 picks a free port) [default: 8545].
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Chain id [default: 31337].
    #[arg(long)]
    pub chain_id: Option<u64>,
    /// Milliseconds between blocks [default: 200].
    #[arg(long, value_name = "MS")]
    pub block_time: Option<u64>,
    /// Block gas limit [default: 1000000000].
    #[arg(long)]
    pub gas_limit: Option<u64>,
    /// Largest gas limit of a single transaction [default: 30000000].
    #[arg(long)]
    pub tx_gas_cap: Option<u64>,
    /// Largest accepted transaction, in bytes [default: 131072].
    #[arg(long)]
    pub max_tx_size: Option<usize>,
    /// Smallest priority fee accepted, in wei [default: 0].
    #[arg(long)]
    pub min_tip: Option<u128>,
    /// Geth-style genesis JSON whose `alloc` replaces the development accounts.
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Number of development accounts to derive and prefund [default: 10].
    #[arg(long)]
    pub accounts: Option<u32>,
    /// Mnemonic the development accounts derive from [default: test test ... junk].
    #[arg(long)]
    pub mnemonic: Option<String>,
    /// Address credited with priority fees [default: 0x000…000].
    #[arg(long)]
    pub fee_recipient: Option<Address>,
    /// Close a block every slot even when there is nothing to include.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub empty_blocks: Option<bool>,
    /// Most transactions in the pool [default: 200000].
    #[arg(long)]
    pub pool_size: Option<usize>,
    /// Block executor: `parallel` (the split then the lanes on two threads, Block-STM on more),
    /// `sequential`, or `auto` (parallel when more than one core is available)
    /// [default: auto].
    #[arg(long, value_name = "KIND")]
    pub executor: Option<ExecutorKind>,
    /// Threads of the parallel executor [default: available cores].
    #[arg(long, value_name = "N")]
    pub exec_threads: Option<usize>,
    /// Threads of the state committer, which computes each block's state root off the
    /// ordering path [default: available cores].
    #[arg(long, value_name = "N")]
    pub commit_threads: Option<usize>,
    /// Blocks of state history kept behind the head for `eth_call`, `eth_getBalance`,
    /// `eth_getProof` and the like at older blocks; older history is pruned so disk use
    /// stays bounded. 0 keeps only the head's state [default: 1024].
    #[arg(long, value_name = "BLOCKS")]
    pub state_history: Option<u64>,
    /// The store's page cache in MiB: trie nodes, accounts and slots that blocks read
    /// stay in memory up to this size [default: a quarter of the machine's memory,
    /// within 1024..=4096].
    #[arg(long, value_name = "MIB")]
    pub cache_mb: Option<usize>,
    /// While a block is open, emit a signed preconfirmation fragment this often (when
    /// there are new transactions); 0 turns fragments off (each block is executed in
    /// one piece at the end of its slot) [default: 10].
    #[arg(long, value_name = "MS")]
    pub fragment_interval: Option<u64>,
    /// File holding the sequencer's secp256k1 private key (hex) that signs fragments
    /// [default: <datadir>/sequencer.key, created on first start].
    #[arg(long, value_name = "FILE")]
    pub sequencer_key: Option<PathBuf>,
    /// Data-availability layer the decided blocks are posted to, in batches: `local` (a
    /// file store under <datadir>/da, served over RPC: `cairn_getDaBatch`) or `none`
    /// [default: local].
    #[arg(long, value_name = "LAYER")]
    pub da: Option<DaKind>,
    /// With `--da ethereum`: the L1's JSON-RPC URL (`http://`).
    #[arg(long = "da.l1-rpc", value_name = "URL")]
    #[serde(rename = "da.l1-rpc")]
    pub da_l1_rpc: Option<String>,
    /// With `--da ethereum`: the private key (hex) of the L1 account that pays for the
    /// batch transactions, or a file holding it.
    #[arg(long = "da.l1-key", value_name = "KEY|FILE")]
    #[serde(rename = "da.l1-key")]
    pub da_l1_key: Option<String>,
    /// With `--da ethereum`: the address batch transactions are sent to
    /// [default: 0x00000000000000000000000000000000ca1d0da0].
    #[arg(long = "da.inbox", value_name = "ADDRESS")]
    #[serde(rename = "da.inbox")]
    pub da_inbox: Option<Address>,
    /// With `--da ethereum`: `blob` (EIP-4844 blobs, calldata when a batch does not fit or
    /// the L1 refuses blobs) or `calldata` [default: blob].
    #[arg(long = "da.mode", value_name = "MODE")]
    #[serde(rename = "da.mode")]
    pub da_mode: Option<DaModeArg>,
    /// With `--da celestia`: a Celestia node's JSON-RPC URL (`ws://…:26658`).
    #[arg(long = "da.celestia-rpc", value_name = "URL")]
    #[serde(rename = "da.celestia-rpc")]
    pub da_celestia_rpc: Option<String>,
    /// With `--da celestia`: a consensus node's gRPC URL (`http://…:9090`), to pay for
    /// blobs.
    #[arg(long = "da.celestia-grpc", value_name = "URL")]
    #[serde(rename = "da.celestia-grpc")]
    pub da_celestia_grpc: Option<String>,
    /// With `--da celestia`: the paying account's private key (hex), or a file holding it.
    #[arg(long = "da.celestia-key", value_name = "KEY|FILE")]
    #[serde(rename = "da.celestia-key")]
    pub da_celestia_key: Option<String>,
    /// With `--da celestia`: the Celestia node's auth token, if it needs one.
    #[arg(long = "da.celestia-token", value_name = "TOKEN")]
    #[serde(rename = "da.celestia-token")]
    pub da_celestia_token: Option<String>,
    /// With `--da celestia`: the namespace's 10 bytes, hex [default: "cairn" then the
    /// chain id's low 5 bytes].
    #[arg(long = "da.celestia-namespace", value_name = "HEX")]
    #[serde(rename = "da.celestia-namespace")]
    pub da_celestia_namespace: Option<String>,
    /// Benchmarks only: skip state commitment (headers carry a zero state root). Used by
    /// `cairn bench rpc --commit-compare` to measure what commitment costs.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub no_state_root: bool,
}

/// Where decided blocks are made available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaKind {
    /// The embedded file-backed store.
    Local,
    /// No DA layer.
    None,
    /// An Ethereum L1 (`--da.l1-rpc`, `--da.l1-key`): blob transactions.
    Ethereum,
    /// Celestia (`--da.celestia-rpc`, `--da.celestia-grpc`, `--da.celestia-key`): one blob
    /// per batch. Needs a `cairn` built with `--features celestia`.
    Celestia,
}

/// `--da celestia`'s settings, checked (read only when built with `--features
/// celestia`).
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "celestia"), allow(dead_code))]
pub struct CelestiaDaConfig {
    pub rpc: String,
    pub grpc: String,
    pub key_hex: String,
    pub token: Option<String>,
    pub namespace: Vec<u8>,
}

/// How batches go to an Ethereum L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaModeArg {
    Blob,
    Calldata,
}

/// `--da ethereum`'s settings, checked.
#[derive(Debug, Clone)]
pub struct EthereumDaConfig {
    pub rpc: String,
    pub key: alloy_signer_local::PrivateKeySigner,
    pub inbox: Address,
    pub mode: cairn_da::PostMode,
}

/// The default inbox of batch transactions.
pub const DEFAULT_INBOX: Address = alloy_primitives::address!("00000000000000000000000000000000ca1d0da0");

/// Which executor the builder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    Auto,
    Parallel,
    Sequential,
}

/// The smallest store page cache accepted, in MiB.
pub const MIN_CACHE_MB: usize = 16;

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct DevConfig {
    pub datadir: PathBuf,
    pub listen: SocketAddr,
    pub chain: ChainConfig,
    pub block_time: Duration,
    pub genesis: Option<PathBuf>,
    pub accounts: u32,
    pub mnemonic: String,
    pub empty_blocks: bool,
    pub pool_size: usize,
    /// Parallel executor threads; 1 means the sequential executor.
    pub exec_threads: usize,
    /// State committer threads.
    pub commit_threads: usize,
    /// Blocks of state history kept behind the head.
    pub state_history: u64,
    /// The store's page cache in bytes.
    pub cache_bytes: usize,
    /// Interval between preconfirmation fragments; `None`: fragments off.
    pub fragment_interval: Option<Duration>,
    /// The sequencer key file.
    pub sequencer_key: PathBuf,
    /// Benchmarks only: state commitment off.
    pub no_state_root: bool,
    pub da: DaKind,
    /// With `--da ethereum`.
    pub ethereum: Option<EthereumDaConfig>,
    /// With `--da celestia`.
    pub celestia: Option<CelestiaDaConfig>,
}

impl DevArgs {
    /// Fills unset flags from `other` (the config file).
    fn or(self, other: DevArgs) -> DevArgs {
        DevArgs {
            config: self.config,
            datadir: self.datadir.or(other.datadir),
            http_addr: self.http_addr.or(other.http_addr),
            port: self.port.or(other.port),
            chain_id: self.chain_id.or(other.chain_id),
            block_time: self.block_time.or(other.block_time),
            gas_limit: self.gas_limit.or(other.gas_limit),
            tx_gas_cap: self.tx_gas_cap.or(other.tx_gas_cap),
            max_tx_size: self.max_tx_size.or(other.max_tx_size),
            min_tip: self.min_tip.or(other.min_tip),
            genesis: self.genesis.or(other.genesis),
            accounts: self.accounts.or(other.accounts),
            mnemonic: self.mnemonic.or(other.mnemonic),
            fee_recipient: self.fee_recipient.or(other.fee_recipient),
            empty_blocks: self.empty_blocks.or(other.empty_blocks),
            pool_size: self.pool_size.or(other.pool_size),
            executor: self.executor.or(other.executor),
            exec_threads: self.exec_threads.or(other.exec_threads),
            commit_threads: self.commit_threads.or(other.commit_threads),
            state_history: self.state_history.or(other.state_history),
            cache_mb: self.cache_mb.or(other.cache_mb),
            fragment_interval: self.fragment_interval.or(other.fragment_interval),
            sequencer_key: self.sequencer_key.or(other.sequencer_key),
            da: self.da.or(other.da),
            da_l1_rpc: self.da_l1_rpc.or(other.da_l1_rpc),
            da_l1_key: self.da_l1_key.or(other.da_l1_key),
            da_inbox: self.da_inbox.or(other.da_inbox),
            da_mode: self.da_mode.or(other.da_mode),
            da_celestia_rpc: self.da_celestia_rpc.or(other.da_celestia_rpc),
            da_celestia_grpc: self.da_celestia_grpc.or(other.da_celestia_grpc),
            da_celestia_key: self.da_celestia_key.or(other.da_celestia_key),
            da_celestia_token: self.da_celestia_token.or(other.da_celestia_token),
            da_celestia_namespace: self.da_celestia_namespace.or(other.da_celestia_namespace),
            no_state_root: self.no_state_root,
        }
    }

    pub fn resolve(self) -> anyhow::Result<DevConfig> {
        let args = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
                let file: DevArgs =
                    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
                self.or(file)
            }
            None => self,
        };
        let defaults = ChainConfig::default();
        let chain = ChainConfig {
            chain_id: args.chain_id.unwrap_or(defaults.chain_id),
            gas_limit: args.gas_limit.unwrap_or(defaults.gas_limit),
            tx_gas_cap: args.tx_gas_cap.unwrap_or(defaults.tx_gas_cap),
            max_tx_bytes: args.max_tx_size.unwrap_or(defaults.max_tx_bytes),
            min_tip: args.min_tip.unwrap_or(defaults.min_tip),
            fee_recipient: args.fee_recipient.unwrap_or(defaults.fee_recipient),
            dev: true,
            ..defaults
        };
        if chain.tx_gas_cap > chain.gas_limit {
            bail!("--tx-gas-cap ({}) cannot exceed --gas-limit ({})", chain.tx_gas_cap, chain.gas_limit);
        }
        if chain.gas_limit < 21_000 {
            bail!("--gas-limit must be at least 21000");
        }
        let block_time = args.block_time.unwrap_or(200);
        if block_time == 0 {
            bail!("--block-time must be at least 1 ms");
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let exec_threads = match (args.executor.unwrap_or(ExecutorKind::Auto), args.exec_threads) {
            (ExecutorKind::Sequential, _) => 1,
            (_, Some(0)) => bail!("--exec-threads must be at least 1"),
            (ExecutorKind::Parallel, threads) => threads.unwrap_or(cores).max(2),
            (ExecutorKind::Auto, threads) => threads.unwrap_or(cores),
        };
        let commit_threads = match args.commit_threads {
            Some(0) => bail!("--commit-threads must be at least 1"),
            Some(n) => n,
            None => cores,
        };
        let datadir = match args.datadir {
            Some(d) => d,
            None => dirs::data_dir().context("no per-user data directory; pass --datadir")?.join("cairn").join("dev"),
        };
        if args.cache_mb.is_some_and(|mb| mb < MIN_CACHE_MB) {
            bail!("--cache-mb must be at least {MIN_CACHE_MB}");
        }
        let fragment_interval = match args.fragment_interval {
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
            None => Some(cairn_sequencer::DEFAULT_FRAGMENT_INTERVAL),
        };
        let sequencer_key = args.sequencer_key.unwrap_or_else(|| datadir.join("sequencer.key"));
        let ethereum = match args.da {
            Some(DaKind::Ethereum) => {
                let rpc = args.da_l1_rpc.clone().context("--da ethereum needs --da.l1-rpc (the L1's JSON-RPC URL)")?;
                let key =
                    args.da_l1_key.clone().context("--da ethereum needs --da.l1-key (a key or a file holding it)")?;
                let text = match std::fs::read_to_string(&key) {
                    Ok(t) => t,
                    Err(_) => key.clone(),
                };
                let key: alloy_signer_local::PrivateKeySigner = text
                    .trim()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--da.l1-key is not a secp256k1 private key: {e}"))?;
                let mode = match args.da_mode.unwrap_or(DaModeArg::Blob) {
                    DaModeArg::Blob => cairn_da::PostMode::Blob,
                    DaModeArg::Calldata => cairn_da::PostMode::Calldata,
                };
                Some(EthereumDaConfig { rpc, key, inbox: args.da_inbox.unwrap_or(DEFAULT_INBOX), mode })
            }
            _ => None,
        };
        let celestia = match args.da {
            Some(DaKind::Celestia) => {
                if !cfg!(feature = "celestia") {
                    bail!("--da celestia: this cairn was built without Celestia support (build it with `cargo build --release --features celestia`)");
                }
                let need =
                    |v: &Option<String>, flag: &str| v.clone().with_context(|| format!("--da celestia needs {flag}"));
                let rpc = need(&args.da_celestia_rpc, "--da.celestia-rpc (a Celestia node's JSON-RPC URL)")?;
                let grpc = need(&args.da_celestia_grpc, "--da.celestia-grpc (a consensus node's gRPC URL)")?;
                let key = need(&args.da_celestia_key, "--da.celestia-key (a key or a file holding it)")?;
                let key_hex = std::fs::read_to_string(&key).unwrap_or(key).trim().to_string();
                let namespace = match &args.da_celestia_namespace {
                    Some(h) => {
                        let bytes = alloy_primitives::hex::decode(h)
                            .map_err(|e| anyhow::anyhow!("--da.celestia-namespace is not hex: {e}"))?;
                        if bytes.is_empty() || bytes.len() > 10 {
                            bail!("--da.celestia-namespace holds 1 to 10 bytes, not {}", bytes.len());
                        }
                        bytes
                    }
                    None => [&b"cairn"[..], &chain.chain_id.to_be_bytes()[3..]].concat(),
                };
                Some(CelestiaDaConfig { rpc, grpc, key_hex, token: args.da_celestia_token.clone(), namespace })
            }
            _ => None,
        };
        Ok(DevConfig {
            fragment_interval,
            sequencer_key,
            datadir,
            listen: SocketAddr::new(args.http_addr.unwrap_or(IpAddr::from([127, 0, 0, 1])), args.port.unwrap_or(8545)),
            chain,
            block_time: Duration::from_millis(block_time),
            genesis: args.genesis,
            accounts: args.accounts.unwrap_or(10),
            mnemonic: args.mnemonic.unwrap_or_else(|| DEV_MNEMONIC.to_string()),
            empty_blocks: args.empty_blocks.unwrap_or(false),
            pool_size: args.pool_size.unwrap_or(200_000),
            exec_threads,
            commit_threads,
            state_history: args.state_history.unwrap_or(cairn_storage::DEFAULT_STATE_HISTORY),
            cache_bytes: args.cache_mb.map_or_else(cairn_storage::default_cache_bytes, |mb| mb << 20),
            no_state_root: args.no_state_root,
            da: args.da.unwrap_or(DaKind::Local),
            ethereum,
            celestia,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn celestia_flags_are_checked() {
        let args = |ns: Option<&str>| DevArgs {
            chain_id: Some(0x0102_0304_0506),
            da: Some(DaKind::Celestia),
            da_celestia_rpc: Some("ws://127.0.0.1:26658".into()),
            da_celestia_grpc: Some("http://127.0.0.1:9090".into()),
            da_celestia_key: Some("0x01".into()),
            da_celestia_namespace: ns.map(String::from),
            ..Default::default()
        };
        if cfg!(feature = "celestia") {
            let cfg = args(None).resolve().expect("resolve");
            let c = cfg.celestia.expect("celestia settings");
            assert_eq!(c.namespace, [&b"cairn"[..], &[0x02, 0x03, 0x04, 0x05, 0x06]].concat());
            assert_eq!(c.key_hex, "0x01");
            let c = args(Some("00ff")).resolve().expect("resolve").celestia.expect("settings");
            assert_eq!(c.namespace, vec![0, 0xff]);
            let e = args(Some("00112233445566778899aa")).resolve().expect_err("11 bytes");
            assert!(e.to_string().contains("1 to 10 bytes"), "{e}");
            let missing = DevArgs { da_celestia_grpc: None, ..args(None) }.resolve().expect_err("no gRPC");
            assert!(missing.to_string().contains("--da.celestia-grpc"), "{missing}");
        } else {
            let e = args(None).resolve().expect_err("not built in");
            assert!(e.to_string().contains("--features celestia"), "{e}");
        }
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cairn.toml");
        std::fs::write(
            &path,
            "chain-id = 777\nblock-time = 50\nstate-history = 64\ncache-mb = 2048\n\"http.addr\" = \"0.0.0.0\"\n",
        )
        .expect("write");
        let args = DevArgs { config: Some(path), block_time: Some(10), ..Default::default() };
        let cfg = args.resolve().expect("resolve");
        assert_eq!(cfg.chain.chain_id, 777);
        assert_eq!(cfg.block_time, Duration::from_millis(10));
        assert_eq!(cfg.listen.ip(), IpAddr::from([0, 0, 0, 0]));
        assert_eq!(cfg.listen.port(), 8545);
        assert_eq!(cfg.chain.gas_limit, 1_000_000_000);
        assert_eq!(cfg.state_history, 64);
        assert_eq!(cfg.cache_bytes, 2048 << 20);
        let cfg = DevArgs::default().resolve().expect("defaults");
        assert_eq!(cfg.state_history, cairn_storage::DEFAULT_STATE_HISTORY);
        assert_eq!(cfg.cache_bytes, cairn_storage::default_cache_bytes());
        let range = cairn_storage::MIN_DEFAULT_CACHE_BYTES..=cairn_storage::MAX_DEFAULT_CACHE_BYTES;
        assert!(range.contains(&cfg.cache_bytes), "default cache {} outside {range:?}", cfg.cache_bytes);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        assert_eq!(cfg.commit_threads, cores);
        let err = DevArgs { commit_threads: Some(0), ..Default::default() }.resolve().expect_err("no threads");
        assert!(err.to_string().contains("--commit-threads must be at least 1"), "{err}");
        let err = DevArgs { cache_mb: Some(1), ..Default::default() }.resolve().expect_err("tiny cache");
        assert!(err.to_string().contains("--cache-mb must be at least 16"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "chain-idd = 1\n").expect("write");
        let err = DevArgs { config: Some(path), ..Default::default() }.resolve().expect_err("unknown key");
        assert!(format!("{err:#}").contains("chain-idd"), "{err:#}");
        let err = DevArgs { gas_limit: Some(1_000), ..Default::default() }.resolve().expect_err("cap > limit");
        assert!(err.to_string().contains("--tx-gas-cap"));
    }

    #[test]
    fn executor_choice_from_file_and_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cairn.toml");
        std::fs::write(&path, "executor = \"sequential\"\n").expect("write");
        let cfg = DevArgs { config: Some(path.clone()), ..Default::default() }.resolve().expect("resolve");
        assert_eq!(cfg.exec_threads, 1);
        let forced = DevArgs {
            config: Some(path),
            executor: Some(ExecutorKind::Parallel),
            exec_threads: Some(4),
            ..Default::default()
        };
        assert_eq!(forced.resolve().expect("resolve").exec_threads, 4);
        let parallel_one =
            DevArgs { executor: Some(ExecutorKind::Parallel), exec_threads: Some(1), ..Default::default() };
        assert_eq!(parallel_one.resolve().expect("resolve").exec_threads, 2, "parallel means at least two threads");
        let zero = DevArgs { exec_threads: Some(0), ..Default::default() };
        assert!(zero.resolve().is_err());
    }
}
