// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// EIP-4788 beacon block roots, as deployed at 0x000F3df6D732807Ef1319fB7B8bB8522d0Beac02:
/// Cairn's own source with the behaviour of the canonical contract.
///
/// Storage is two ring buffers of 8191 slots: slot `t % 8191` holds timestamp `t`, slot
/// `t % 8191 + 8191` the parent beacon block root given for it.
/// - Called by the system address (at the start of each block, with the parent beacon
///   block root as the 32 bytes of calldata): records the block's timestamp and root.
/// - Called by anyone else with a 32-byte timestamp: answers the root recorded for that
///   timestamp; reverts (no data) when the calldata is not 32 bytes, the timestamp is
///   zero, or its slot holds another timestamp. Value is accepted, as by the canonical
///   contract.
contract BeaconRoots {
    fallback() external payable {
        assembly {
            if eq(caller(), 0xfffffffffffffffffffffffffffffffffffffffe) {
                let index := mod(timestamp(), 8191)
                sstore(index, timestamp())
                sstore(add(index, 8191), calldataload(0))
                stop()
            }
            if iszero(eq(calldatasize(), 32)) { revert(0, 0) }
            let ts := calldataload(0)
            if iszero(ts) { revert(0, 0) }
            let index := mod(ts, 8191)
            if iszero(eq(sload(index), ts)) { revert(0, 0) }
            mstore(0, sload(add(index, 8191)))
            return(0, 32)
        }
    }
}
