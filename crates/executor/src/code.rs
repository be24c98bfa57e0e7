//! Analyzed contract code, kept between blocks.
//!
//! Before revm runs a contract it scans the code for its jump destinations
//! (`Bytecode::new_raw`). Every executor's database used to do that once per block for
//! every contract the block called (each thread of a parallel run again): 9.6% of the
//! sequential executor's time on the 62 mainnet blocks, 13–18% of the two-thread
//! executor's (`perf`, `cairn bench exec --only mainnet`). Code is addressed by its
//! hash, so an analysis stays right forever; each thread keeps the contracts it ran
//! lately in its own bounded cache. Per thread rather than shared: a `Bytecode` is an
//! `Arc`, and revm clones and drops the ones it runs every transaction, so a copy
//! shared between the threads of a parallel run would bounce its reference count
//! between their cores.

use alloy_primitives::{Bytes, B256};
use quick_cache::unsync::Cache;
use quick_cache::Weighter;
use revm::bytecode::Bytecode;
use std::cell::RefCell;

/// Bytes of code (with its jump table) one thread keeps analyzed.
pub const CACHE_BYTES_PER_THREAD: u64 = 32 << 20;

/// What an entry costs: its code, one jump-table bit per byte, the allocations.
#[derive(Clone, Copy)]
struct CodeWeight;

impl Weighter<B256, Bytecode> for CodeWeight {
    fn weight(&self, _hash: &B256, code: &Bytecode) -> u64 {
        let len = code.len() as u64;
        len + len / 8 + 128
    }
}

thread_local! {
    static ANALYZED: RefCell<Cache<B256, Bytecode, CodeWeight>> =
        RefCell::new(Cache::with_weighter(1024, CACHE_BYTES_PER_THREAD, CodeWeight));
}

/// The analyzed code whose hash is `hash`, from this thread's cache, else from `load`
/// (and then kept). `hash` must be the code's Keccak hash.
pub(crate) fn analyzed<E>(hash: B256, load: impl FnOnce() -> Result<Bytes, E>) -> Result<Bytecode, E> {
    if let Some(code) = ANALYZED.with_borrow(|cache| cache.get(&hash).cloned()) {
        return Ok(code);
    }
    let raw = load()?;
    // A state without the code for a hash it names (a view missing it) is not an
    // analysis to keep: another state may well have that code.
    let keep = !raw.is_empty();
    let code = Bytecode::new_raw(raw);
    if keep {
        ANALYZED.with_borrow_mut(|cache| cache.insert(hash, code.clone()));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::keccak256;

    #[test]
    fn a_cached_analysis_is_the_same_code_and_loads_once() {
        let raw = Bytes::from_static(&[0x60, 0x03, 0x56, 0x5b, 0x00]);
        let hash = keccak256(&raw);
        let mut loads = 0;
        for _ in 0..3 {
            let code = analyzed::<()>(hash, || {
                loads += 1;
                Ok(raw.clone())
            })
            .expect("loads");
            assert_eq!(code.original_byte_slice(), &raw[..]);
            let jumps = code.legacy_jump_table().expect("legacy code");
            assert!(jumps.is_valid(3) && !jumps.is_valid(1));
        }
        assert_eq!(loads, 1);
        // A failed load is reported and nothing is kept.
        let other = keccak256([1u8]);
        assert_eq!(analyzed(other, || Err("gone")).err(), Some("gone"));
        assert!(analyzed::<()>(other, || Ok(Bytes::new())).expect("loads").is_empty(), "missing code");
        assert_eq!(analyzed::<()>(other, || Ok(Bytes::from_static(&[0x00]))).expect("loads").len(), 1);
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let big = Bytes::from(vec![0x5b; 1 << 20]);
        for i in 0..64u64 {
            let hash = keccak256(i.to_be_bytes());
            analyzed::<()>(hash, || Ok(big.clone())).expect("loads");
        }
        let weight = ANALYZED.with_borrow(|cache| cache.weight());
        assert!(weight <= CACHE_BYTES_PER_THREAD, "{weight}");
    }
}
