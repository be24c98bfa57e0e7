// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// Cairn's deterministic deployer, predeployed at 0x4e59b44847b379578588920ca78fbf26c0b4956c
/// and written for Cairn to the widely used convention there (what `forge script` and
/// `forge create --salt` expect): calldata is a 32-byte salt followed by init code; the
/// code is deployed with CREATE2 (with the call's value) and the new address is returned
/// as 20 raw bytes. A failed creation reverts with no data.
contract Create2Deployer {
    fallback() external payable {
        assembly {
            if lt(calldatasize(), 32) { revert(0, 0) }
            let size := sub(calldatasize(), 32)
            calldatacopy(0, 32, size)
            let created := create2(callvalue(), 0, size, calldataload(0))
            if iszero(created) { revert(0, 0) }
            mstore(0, shl(96, created))
            return(0, 20)
        }
    }
}
