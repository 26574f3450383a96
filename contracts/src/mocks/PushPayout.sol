// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title PushPayout
/// @notice Benchmark-only: pays a batch of recipients by pushing ERC-20 transfers from its own
///         balance, as escrow contracts that pay in batches do. bench/gas.py compares its cost per
///         recipient with a Merkle claim. Not access-controlled: never hold real funds in it.
contract PushPayout {
    using SafeERC20 for IERC20;

    error LengthMismatch();

    function payout(IERC20 token, address[] calldata recipients, uint256[] calldata amounts) external {
        if (recipients.length != amounts.length) revert LengthMismatch();
        for (uint256 i; i < recipients.length; ++i) {
            token.safeTransfer(recipients[i], amounts[i]);
        }
    }
}
