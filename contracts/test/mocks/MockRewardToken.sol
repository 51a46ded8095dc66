// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC3009} from "@openzeppelin/contracts/token/ERC20/extensions/draft-ERC3009.sol";

/// @notice Test-only stand-in for RewardToken: OpenZeppelin ERC-20 + EIP-2612 + EIP-3009 (v, r, s) and the
/// `mintEmission` / `emissionCap` / `mintedInEpoch` surface the RewardDistributor uses (flat cap per epoch,
/// anyone may mint: tests only), plus the claim ledger (`DISTRIBUTOR`, `payClaim`, `claimedOf`) kept in a plain
/// mapping with a plain `transfer`, so the distributor's tests do not depend on RewardToken's packed storage.
contract MockRewardToken is ERC20, ERC20Permit, ERC3009 {
    uint256 public immutable CAP_PER_EPOCH;
    address public immutable DISTRIBUTOR;
    mapping(uint64 epoch => uint256) public mintedInEpoch;
    mapping(address account => uint256) public claimedOf;

    constructor(uint256 capPerEpoch, address distributor) ERC20("Mock Cairn", "MCAIRN") ERC20Permit("Mock Cairn") {
        CAP_PER_EPOCH = capPerEpoch;
        DISTRIBUTOR = distributor;
    }

    function payClaim(address account, uint256 cumulativeAmount) external returns (uint256 previous) {
        require(msg.sender == DISTRIBUTOR, "not distributor");
        previous = claimedOf[account];
        if (cumulativeAmount <= previous) return previous;
        claimedOf[account] = cumulativeAmount;
        _transfer(msg.sender, account, cumulativeAmount - previous);
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
