// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Test} from "./Test.sol";
import {ContributionRegistry} from "../../src/ContributionRegistry.sol";
import {IContributionRegistry} from "../../src/interfaces/IContributionRegistry.sol";

/// @notice Commit-then-reveal helpers: each commits the registration's commitment and rolls one block, so the
/// reveal that follows is valid.
abstract contract RegistryCommits is Test {
    /// @dev The salt every helper commits with.
    bytes32 internal constant SALT = keccak256("salt");

    /// @dev The registry the helpers commit to.
    function _registry() internal view virtual returns (ContributionRegistry);

    function _commitValue(bytes32 commitment) internal {
        bytes32[] memory cs = new bytes32[](1);
        cs[0] = commitment;
        _registry().commit(cs);
        vm.roll(block.number + 1);
    }

    function _commitOne(address owner, bytes32 contentHash) internal {
        _commitValue(_registry().commitmentOf(owner, contentHash, SALT));
    }

    function _commitBatch(address owner, bytes32[] memory contentHashes) internal {
        _commitValue(_registry().commitmentOf(owner, keccak256(abi.encodePacked(contentHashes)), SALT));
    }

    function _commitList(address owner, IContributionRegistry.DatasetInput[] memory ds) internal {
        bytes32[] memory hs = new bytes32[](ds.length);
        for (uint256 i; i < ds.length; i++) {
            hs[i] = ds[i].contentHash;
        }
        _commitBatch(owner, hs);
    }
}
