// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title MockToken
/// @notice Test-only ERC-20 with misbehaviours switched on by setters: a transfer fee (like
///         fee-on-transfer tokens), `false` returned instead of a revert, and a one-shot hook that
///         calls back into another contract during a transfer (to test reentrancy). Never deploy it
///         outside tests.
contract MockToken is ERC20 {
    uint16 public feeBps;
    bool public returnFalse;
    address public hookTarget;
    bytes public hookData;

    constructor() ERC20("Mock", "MOCK") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function setFeeBps(uint16 bps) external {
        feeBps = bps;
    }

    function setReturnFalse(bool value) external {
        returnFalse = value;
    }

    /// @notice On the next transfer or transferFrom, call `target` with `data` first (once).
    function setHook(address target, bytes calldata data) external {
        hookTarget = target;
        hookData = data;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        if (returnFalse) return false;
        _runHook();
        return super.transfer(to, value);
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (returnFalse) return false;
        _runHook();
        return super.transferFrom(from, to, value);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (feeBps != 0 && from != address(0) && to != address(0)) {
            uint256 fee = (value * feeBps) / 10_000;
            super._update(from, address(0), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }

    function _runHook() private {
        address target = hookTarget;
        if (target == address(0)) return;
        bytes memory data = hookData;
        delete hookTarget;
        delete hookData;
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
    }
}
