// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Counter} from "../src/Counter.sol";

interface Vm {
    function startBroadcast() external;
    function stopBroadcast() external;
}

/// Deploys Counter with a salt (CREATE2 through the deterministic deployer at
/// 0x4e59b44847b379578588920ca78fbf26c0b4956c) and calls it, broadcasting both.
contract Deploy {
    Vm constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function run() external returns (address) {
        vm.startBroadcast();
        Counter c = new Counter{salt: bytes32(uint256(42))}(msg.sender);
        c.bump();
        vm.stopBroadcast();
        return address(c);
    }
}
