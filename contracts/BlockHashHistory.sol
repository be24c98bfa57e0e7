// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// EIP-2935 block-hash history, as deployed at 0x0000F90827F1C53a10cb7A02335B175320002935:
/// Cairn's own source with the behaviour of the canonical contract.
///
/// Storage is a ring buffer of 8191 slots: slot `n % 8191` holds the hash of block `n`.
/// - Called by the system address (at the start of block `n`, with the parent's hash as
///   the 32 bytes of calldata): records it in slot `(n - 1) % 8191`.
/// - Called by anyone else with a 32-byte block number `b`: answers the hash of block
///   `b`; reverts (no data) when the calldata is not 32 bytes, `b` is not before the
///   current block, or `b` is more than 8191 blocks back. Value is accepted, as by the
///   canonical contract.
contract BlockHashHistory {
    fallback() external payable {
        assembly {
            if eq(caller(), 0xfffffffffffffffffffffffffffffffffffffffe) {
                sstore(mod(sub(number(), 1), 8191), calldataload(0))
                stop()
            }
            if iszero(eq(calldatasize(), 32)) { revert(0, 0) }
            let wanted := calldataload(0)
            if gt(wanted, sub(number(), 1)) { revert(0, 0) }
            if gt(sub(number(), wanted), 8191) { revert(0, 0) }
            mstore(0, sload(mod(wanted, 8191)))
            return(0, 32)
        }
    }
}
