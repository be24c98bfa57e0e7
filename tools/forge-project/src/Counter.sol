// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// A minimal contract for the forge end-to-end test.
contract Counter {
    uint256 public count;
    address public immutable creator;

    constructor(address who) {
        creator = who;
    }

    function bump() external {
        count += 1;
    }
}
