//! The whole JSON-RPC module: every namespace's methods on one `EthApi`.

use jsonrpsee::RpcModule;

use crate::eth::EthApi;

impl EthApi {
    /// Registers every method on a jsonrpsee module (the development controls only when
    /// the API was made `with_dev`).
    pub fn into_module(self) -> Result<RpcModule<EthApi>, jsonrpsee::core::RegisterMethodError> {
        let dev = self.dev.is_some();
        let mut m = RpcModule::new(self);
        EthApi::register(&mut m)?;
        crate::blocks::register(&mut m)?;
        crate::filters::register(&mut m)?;
        crate::txpool::register(&mut m)?;
        crate::trace::register(&mut m)?;
        crate::simulate::register(&mut m)?;
        if dev {
            crate::dev::register(&mut m)?;
        }
        crate::cairn::register(&mut m)?;
        crate::pubsub::register(&mut m)?;
        Ok(m)
    }
}
