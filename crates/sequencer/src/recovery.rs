//! Recovery at start: the fragment log's blocks above the store's head are executed
//! again (replay mode) and checked against what their fragments promised; closed ones
//! are sealed, the open one is handed to the builder. `Chain::open` is defined here: it
//! opens the chain's state and then recovers.

use cairn_executor::{BlockContext, Executor};
use cairn_mempool::PoolConfig;
use cairn_primitives::{ChainConfig, GenesisAlloc};
use cairn_storage::Store;
use cairn_trie::StateCommitter;
use std::sync::Arc;

use crate::builder::BuilderConfig;
use crate::chain::{Chain, SequencerError};
use crate::fragments::{LoggedBlock, Preconf};
use crate::pipeline::BlockInProgress;
use crate::sealer::seal_next;

impl Chain {
    /// Opens the chain in `store`, writing genesis from `alloc` on first start, reloads
    /// the pool from the admission log at `log_path` and, with `preconf`, replays the
    /// fragment log: blocks that were closed are executed again and sealed, the open
    /// one is handed to the builder, so every preconfirmed transaction keeps its height
    /// and position. Must be called inside a tokio runtime.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        store: Store,
        log_path: &std::path::Path,
        config: ChainConfig,
        alloc: &GenesisAlloc,
        pool: PoolConfig,
        executor: Arc<dyn Executor>,
        committer: Arc<dyn StateCommitter>,
        preconf: Option<Preconf>,
    ) -> Result<Arc<Self>, SequencerError> {
        let (chain, logged) = Self::open_state(store, log_path, config, alloc, pool, executor, committer, preconf)?;
        recover(&chain, logged)?;
        Ok(chain)
    }
}

/// Replays the fragment log's blocks above the store's head: closed ones are executed
/// again and sealed; the open one is left for the builder to go on with.
pub(crate) fn recover(chain: &Chain, logged: Vec<LoggedBlock>) -> Result<(), SequencerError> {
    let count = logged.len();
    for (i, block) in logged.into_iter().enumerate() {
        let expected = chain.tip().number + 1;
        let corrupt =
            |reason: String| SequencerError::Store(cairn_storage::StoreError::Corrupt { what: "fragment log", reason });
        if block.height != expected {
            return Err(corrupt(format!("it holds block {} where block {expected} was expected", block.height)));
        }
        let Some(first) = block.fragments.first() else { continue };
        let mut ctx =
            BlockContext::for_chain(&chain.config, block.height, first.timestamp, first.base_fee, first.prevrandao);
        ctx.beneficiary = first.beneficiary;
        ctx.gas_limit = first.gas_limit;
        let mut open = BlockInProgress::with_context(chain, ctx);
        for f in &block.fragments {
            open.replay(chain, f, true)?;
        }
        tracing::info!(
            height = block.height,
            fragments = block.fragments.len(),
            txs = open.len(),
            closed = block.closed,
            "recovered preconfirmed block from the fragment log"
        );
        if block.closed {
            open.close_logged = true;
            let config = BuilderConfig { max_block_txs: usize::MAX, ..BuilderConfig::default() };
            open.close(chain, &config)?;
            seal_next(chain)?;
        } else if i + 1 == count {
            *chain.resumed.lock() = Some(open);
        } else {
            return Err(corrupt(format!("block {} is not closed but later blocks follow it", block.height)));
        }
    }
    Ok(())
}

impl Chain {
    /// [`Chain::open`] for a validator of a set (consensus decides): nothing is decided
    /// at start. The fragment log's block at the store's head + 1, if any, was this
    /// node's proposal; it is executed again and kept, so that this node proposes it
    /// again unchanged (its preconfirmations hold) if the set has not decided that
    /// height without it.
    #[allow(clippy::too_many_arguments)]
    pub fn open_replica(
        store: Store,
        log_path: &std::path::Path,
        config: ChainConfig,
        alloc: &GenesisAlloc,
        pool: PoolConfig,
        executor: Arc<dyn Executor>,
        committer: Arc<dyn StateCommitter>,
        preconf: Option<Preconf>,
    ) -> Result<Arc<Self>, SequencerError> {
        let (chain, logged) = Self::open_state(store, log_path, config, alloc, pool, executor, committer, preconf)?;
        let next = chain.tip().number + 1;
        for block in logged {
            let Some(first) = block.fragments.first().filter(|_| block.height == next) else {
                tracing::warn!(height = block.height, "fragment log block above the next height ignored");
                continue;
            };
            let mut ctx =
                BlockContext::for_chain(&chain.config, block.height, first.timestamp, first.base_fee, first.prevrandao);
            ctx.beneficiary = first.beneficiary;
            ctx.gas_limit = first.gas_limit;
            let mut open = BlockInProgress::with_context(&chain, ctx);
            for f in &block.fragments {
                open.replay(&chain, f, true)?;
            }
            open.close_logged = block.closed;
            tracing::info!(
                height = block.height,
                fragments = block.fragments.len(),
                txs = open.len(),
                closed = block.closed,
                "recovered this node's proposal from the fragment log"
            );
            *chain.resumed.lock() = Some(open);
        }
        Ok(chain)
    }
}
