// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title KyodoToken
/// @notice The reward token of the demo and the tests: a plain 18-decimal ERC-20 with EIP-2612
///         permit and a minter role. Production deployments may pay in any ERC-20 instead.
contract KyodoToken is ERC20, ERC20Permit, AccessControl {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    error ZeroAddress();

    /// @param admin receives DEFAULT_ADMIN_ROLE and MINTER_ROLE.
    /// @param initialHolder receives `initialSupply` base units (may be zero when the supply is zero).
    constructor(address admin, address initialHolder, uint256 initialSupply)
        ERC20("Kyodo", "KYO")
        ERC20Permit("Kyodo")
    {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
        if (initialSupply != 0) _mint(initialHolder, initialSupply);
    }

    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
