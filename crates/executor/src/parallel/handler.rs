//! revm's mainnet handler with one change: the fee credited to the block's beneficiary
//! is computed but not applied, so that transactions do not all read and write the
//! beneficiary's balance. The parallel executor applies it as a balance delta.

use alloy_primitives::U256;
use revm::context::result::{EVMError, HaltReason, InvalidTransaction};
use revm::context::{Block, Cfg, ContextTr, Transaction};
use revm::handler::{EvmTr, FrameResult, Handler, MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use std::cell::Cell;

use super::db::{ParDbError, TxDb};

pub(crate) type ParEvm<'s, 'a> = MainnetEvm<MainnetContext<TxDb<'s, 'a>>>;

pub(crate) struct DeferredRewardHandler<'s, 'a> {
    /// The fee owed to the beneficiary by the last transaction run (`None` when fee
    /// charging is disabled or the transaction was invalid).
    pub reward: Cell<Option<U256>>,
    _evm: std::marker::PhantomData<fn() -> ParEvm<'s, 'a>>,
}

impl Default for DeferredRewardHandler<'_, '_> {
    fn default() -> Self {
        Self { reward: Cell::new(None), _evm: std::marker::PhantomData }
    }
}

impl<'s, 'a> Handler for DeferredRewardHandler<'s, 'a> {
    type Evm = ParEvm<'s, 'a>;
    type Error = EVMError<ParDbError, InvalidTransaction>;
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
