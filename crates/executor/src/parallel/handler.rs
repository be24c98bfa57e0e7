//! revm's mainnet handler with one change: the fee credited to the block's beneficiary
//! is computed but not applied, so that transactions do not all read and write the
//! beneficiary's balance. The parallel executors apply it themselves (Block-STM as a
//! balance delta, the lanes in order).

use alloy_primitives::U256;
use revm::context::result::{EVMError, HaltReason, InvalidTransaction};
use revm::context::{Block, Cfg, ContextTr, Transaction};
use revm::database_interface::Database;
use revm::handler::{EvmTr, FrameResult, Handler, MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use std::cell::Cell;

use super::db::TxDb;

pub(crate) type ParEvm<'s, 'a> = MainnetEvm<MainnetContext<TxDb<'s, 'a>>>;

pub(crate) struct DeferredRewardHandler<DB> {
    /// The fee owed to the beneficiary by the last transaction run (`None` when fee
    /// charging is disabled or the transaction was invalid).
    pub reward: Cell<Option<U256>>,
    _db: std::marker::PhantomData<fn() -> DB>,
}

impl<DB> Default for DeferredRewardHandler<DB> {
    fn default() -> Self {
        Self { reward: Cell::new(None), _db: std::marker::PhantomData }
    }
}

impl<DB: Database> Handler for DeferredRewardHandler<DB> {
    type Evm = MainnetEvm<MainnetContext<DB>>;
    type Error = EVMError<DB::Error, InvalidTransaction>;
    type HaltReason = HaltReason;

    fn reward_beneficiary(&self, evm: &mut Self::Evm, exec_result: &mut FrameResult) -> Result<(), Self::Error> {
        let ctx = evm.ctx();
        if ctx.cfg().is_fee_charge_disabled() {
            self.reward.set(None);
            return Ok(());
        }
        // The same arithmetic as revm's `post_execution::reward_beneficiary`.
        let basefee = ctx.block().basefee() as u128;
        let price = ctx.tx().effective_gas_price(basefee);
        let spec: SpecId = *ctx.cfg().spec();
        let coinbase_price = if spec.is_enabled_in(SpecId::LONDON) { price.saturating_sub(basefee) } else { price };
        let gas = exec_result.gas();
        let used = gas.used().saturating_sub(gas.reservoir());
        self.reward.set(Some(U256::from(coinbase_price * used as u128)));
        Ok(())
    }
}
