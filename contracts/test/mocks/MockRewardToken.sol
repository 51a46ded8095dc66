// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC3009} from "@openzeppelin/contracts/token/ERC20/extensions/draft-ERC3009.sol";

/// @notice Test-only stand-in for RewardToken: OpenZeppelin ERC-20 + EIP-2612 + EIP-3009 (v, r, s) and the
/// `mintEmission` / `emissionCap` / `mintedInEpoch` surface the RewardDistributor uses (flat cap per epoch,
/// anyone may mint: tests only).
contract MockRewardToken is ERC20, ERC20Permit, ERC3009 {
    uint256 public immutable CAP_PER_EPOCH;
    mapping(uint64 epoch => uint256) public mintedInEpoch;

    constructor(uint256 capPerEpoch) ERC20("Mock Cairn", "MCAIRN") ERC20Permit("Mock Cairn") {
        CAP_PER_EPOCH = capPerEpoch;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function emissionCap(uint64) external view returns (uint256) {
        return CAP_PER_EPOCH;
    }

    function mintEmission(uint64 epoch, address to, uint256 amount) external {
        require(mintedInEpoch[epoch] + amount <= CAP_PER_EPOCH, "cap");
        mintedInEpoch[epoch] += amount;
        _mint(to, amount);
    }
}

/// @notice Test-only token whose `transfer` returns false instead of reverting (a non-conforming ERC-20).
contract FalseReturningToken is MockRewardToken {
    constructor() MockRewardToken(1e30) {}

    function transfer(address, uint256) public pure override returns (bool) {
        return false;
    }
}
