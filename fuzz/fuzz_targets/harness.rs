// A real chain (store, pool, admission log, no builder) and its JSON-RPC module,
// made once per fuzzing process; every input runs against it in process.

use cairn_executor::SequentialExecutor;
use cairn_mempool::PoolConfig;
use cairn_primitives::{dev_accounts, ChainConfig, GenesisAlloc, DEV_MNEMONIC};
use cairn_rpc::{DevMode, EthApi, RpcLimits};
use cairn_sequencer::{Builder, BuilderConfig, Chain, Ingress};
use std::time::Duration;
use cairn_storage::Store;
use cairn_trie::IncrementalCommitter;
use std::sync::{Arc, OnceLock};

pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub ingress: Ingress,
    pub module: jsonrpsee::RpcModule<EthApi>,
    _builder: cairn_sequencer::Builder,
    _dir: tempfile::TempDir,
}

pub fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let dir = tempfile::tempdir().expect("tempdir");
        let (ingress, module, builder) = runtime.block_on(async {
            let accounts = dev_accounts(DEV_MNEMONIC, 2).expect("derive");
            let store = Store::open(&dir.path().join("db")).expect("store");
            let chain: Arc<Chain> = Chain::open(
                store,
                &dir.path().join("pool.wal"),
                ChainConfig::default(),
                &GenesisAlloc::dev(&accounts),
                PoolConfig::default(),
                Arc::new(SequentialExecutor),
                Arc::new(IncrementalCommitter::new(1).expect("trie")),
                None,
            )
            .expect("chain");
            let ingress = Ingress::new(chain.clone());
            // Dev mode too, so that every method is reachable (mining waits are
            // bounded: no builder runs here).
            let dev = DevMode { accounts: accounts.iter().map(|a| a.signer.clone()).collect() };
            let module =
                EthApi::new(chain.clone(), ingress.clone(), RpcLimits::default()).with_dev(dev).into_module().expect("module");
            // A builder, so that mining requests are served (blocks every 20 ms).
            let config = BuilderConfig { block_time: Duration::from_millis(20), fragment_interval: None, ..Default::default() };
            (ingress, module, Builder::start(chain, config))
        });
        Harness { runtime, ingress, module, _builder: builder, _dir: dir }
    })
}
