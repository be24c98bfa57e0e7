//! Fragment and evidence decoding: a JSON document holding signed fragments (as
//! `cairn_fragments` publishes them and `cairn preconf verify` reads them) and
//! optionally a sealed block; the signature check, the equivocation rule and the
//! broken-promise rule must answer (evidence, nothing, or an error), never panic.
#![no_main]

use cairn_primitives::fragment::{check_promise, find_equivocation, SealedBlock, SignedFragment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let fragment = |key: &str| serde_json::from_value::<SignedFragment>(value.get(key)?.clone()).ok();
    let (a, b) = (fragment("fragment").or_else(|| fragment("first")), fragment("second"));
    if let Some(a) = &a {
        let _ = a.verify(None);
        let _ = a.fragment.hash();
        if let Some(b) = &b {
            let _ = find_equivocation(a, b);
        }
        if let Some(block) = value.get("block").and_then(sealed_block) {
            let _ = check_promise(a, &block);
        }
    }
});

/// A sealed block as the fixtures write it (`number`, `timestamp`, `baseFee`,
/// `gasUsed`, `transactions`, optional `receipts`).
fn sealed_block(v: &serde_json::Value) -> Option<SealedBlock> {
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    let hashes = |k: &str| -> Option<Vec<alloy_primitives::B256>> { serde_json::from_value(v.get(k)?.clone()).ok() };
    Some(SealedBlock {
        number: num("number")?,
        timestamp: num("timestamp").unwrap_or_default(),
        base_fee: num("baseFee").unwrap_or_default(),
        gas_used: num("gasUsed").unwrap_or_default(),
        transactions: hashes("transactions").unwrap_or_default(),
        receipts: hashes("receipts"),
    })
}
