//! Transaction decoding and admission: arbitrary bytes through `Ingress::submit` on a
//! real chain (size, EIP-2718 decoding, chain id, signature recovery, intrinsic gas,
//! fees, balance and nonce against state, pool insertion, the durable admission log).
//! Nothing may panic; a rejection is an error value.
#![no_main]

#[path = "harness.rs"]
mod harness;

use alloy_eips::eip2718::Decodable2718;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The decoder alone, as the fragment log and the store use it.
    if let Ok(tx) = cairn_primitives::TxEnvelope::decode_2718(&mut &data[..]) {
        let _ = alloy_consensus::transaction::SignerRecoverable::recover_signer(&tx);
    }
    let h = harness::harness();
    let _ = h.runtime.block_on(h.ingress.submit(data));
});
