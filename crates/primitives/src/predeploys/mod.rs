//! Contracts `cairn dev`'s default genesis places at their canonical addresses, so that
//! tools that expect them work unchanged: a Multicall3-compatible batch caller (viem's
//! `multicall`, forge), the deterministic CREATE2 deployer (`forge script` with a
//! salt), and the system contracts of the chain's rules: EIP-4788 beacon block roots
//! and EIP-2935 block-hash history, with the block-start system writes that fill them
//! ([`system`]).
//!
//! The two system contracts are Cairn's own sources (`contracts/BeaconRoots.sol`,
//! `contracts/BlockHashHistory.sol`) with the canonical contracts' behaviour (checked
//! against them on anvil, `e2e_system_contracts`). EIP-7002 (withdrawal requests) and
//! EIP-7251 (consolidations) are not predeployed: they are requests to a beacon chain,
//! which a rollup does not have, and Cairn's blocks carry the empty requests hash.
//!
//! The batch caller is Cairn's own source (`contracts/Multicall.sol`), compiled with
//! solc-js 0.8.37 (`tools/compile-predeploys.mjs`); a test checks that this bytecode is
//! what it compiles to, and the end-to-end tests check its behaviour call by call
//! against the canonical Multicall3 on anvil. The CREATE2 deployer is the canonical
//! 69-byte runtime of the deterministic deployment proxy, byte for byte: forge checks
//! the code at that address and refuses any other ("invalid CREATE2 deployer
//! bytecode"), so it is a protocol constant here, like the address; the end-to-end test
//! checks it equals anvil's built-in one.

use alloy_primitives::{address, Address, Bytes};

pub mod system;
pub use system::{BEACON_ROOTS, HISTORY_STORAGE, SYSTEM_ADDRESS};

/// Where Multicall3 lives on every chain that has it.
pub const MULTICALL3: Address = address!("0xcA11bde05977b3631167028862bE2a173976CA11");
/// Where the deterministic deployment proxy lives on every chain that has it.
pub const CREATE2_DEPLOYER: Address = address!("0x4e59b44847b379578588920ca78fbf26c0b4956c");

fn code(hex: &str) -> Bytes {
    hex.trim().parse().unwrap_or_default()
}

/// Runtime code of `contracts/Multicall.sol`.
pub fn multicall_code() -> Bytes {
    code(include_str!("multicall.hex"))
}

/// Runtime code of the deterministic deployment proxy (the canonical bytes).
pub fn create2_deployer_code() -> Bytes {
    code(include_str!("create2_deployer.hex"))
}

/// Runtime code of `contracts/BeaconRoots.sol` (EIP-4788).
pub fn beacon_roots_code() -> Bytes {
    code(include_str!("beacon_roots.hex"))
}

/// Runtime code of `contracts/BlockHashHistory.sol` (EIP-2935).
pub fn block_hash_history_code() -> Bytes {
    code(include_str!("block_hash_history.hex"))
}

/// Every predeploy: address and runtime code.
pub fn all() -> [(Address, Bytes); 4] {
    [
        (MULTICALL3, multicall_code()),
        (CREATE2_DEPLOYER, create2_deployer_code()),
        (BEACON_ROOTS, beacon_roots_code()),
        (HISTORY_STORAGE, block_hash_history_code()),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_code_decodes_and_is_not_empty() {
        for (address, code) in super::all() {
            assert!(code.len() > 20, "{address}: {} bytes", code.len());
        }
    }
}
