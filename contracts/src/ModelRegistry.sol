// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EpochClock} from "./EpochClock.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IContributionRegistry} from "./interfaces/IContributionRegistry.sol";

/// @title ModelRegistry
/// @notice Versioned training manifests (dataset id, weight) per model, over datasets of the ContributionRegistry.
contract ModelRegistry is IModelRegistry, AccessControl, EpochClock {
    /// @notice May register manifests.
    bytes32 public constant TRAINER_ROLE = keccak256("TRAINER_ROLE");

    /// @notice The registry whose datasets manifests refer to.
    IContributionRegistry public immutable REGISTRY;

    /// @dev One slot per model.
    struct Model {
        address trainer;
        uint32 latestVersion;
    }

    mapping(bytes32 modelId => Model) private _models;
    mapping(bytes32 modelId => mapping(uint32 version => bytes32 manifestHash)) private _manifestHashes;

    /// @param admin Holder of DEFAULT_ADMIN_ROLE (grants TRAINER_ROLE).
    /// @param registry The ContributionRegistry.
    /// @param genesis_ Epoch clock genesis (unix seconds).
    /// @param epochLength_ Epoch clock length (seconds).
    constructor(address admin, IContributionRegistry registry, uint64 genesis_, uint64 epochLength_)
        EpochClock(genesis_, epochLength_)
    {
        REGISTRY = registry;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IModelRegistry
    function registerManifest(bytes32 modelId, bytes32[] calldata datasetIds, uint32[] calldata weights)
        external
        onlyRole(TRAINER_ROLE)
        returns (uint32 version)
    {
        uint256 n = datasetIds.length;
        if (n != weights.length) revert ModelRegistryLengthMismatch();
        if (n == 0 || modelId == bytes32(0)) revert ModelRegistryInvalidManifest();
        Model memory m = _models[modelId];
        if (m.trainer != address(0) && m.trainer != _msgSender()) {
            revert ModelRegistryNotModelTrainer(modelId, _msgSender());
        }
        bytes32 previous;
        for (uint256 i; i < n;) {
            bytes32 id = datasetIds[i];
            // Strictly ascending ids: no duplicates, checked in O(n).
            if (id <= previous || weights[i] == 0) revert ModelRegistryInvalidManifest();
            IContributionRegistry.Contribution memory c = REGISTRY.contributionOf(id);
            if (c.kind != IContributionRegistry.Kind.Dataset || c.withdrawn) revert ModelRegistryUnknownDataset(id);
            previous = id;
            // i < n <= calldata length: cannot overflow.
            unchecked {
                ++i;
            }
        }
        // A model would need 2^32 - 1 versions to overflow; checked arithmetic reverts then.
        version = m.latestVersion + 1;
        _models[modelId] = Model({trainer: _msgSender(), latestVersion: version});
        _manifestHashes[modelId][version] = keccak256(abi.encode(datasetIds, weights));
        emit ModelManifestRegistered(modelId, version, _msgSender(), datasetIds, weights);
    }

    /// @inheritdoc IModelRegistry
    function latestVersion(bytes32 modelId) external view returns (uint32) {
        return _models[modelId].latestVersion;
    }

    /// @inheritdoc IModelRegistry
    function trainerOf(bytes32 modelId) external view returns (address) {
        return _models[modelId].trainer;
    }

    /// @inheritdoc IModelRegistry
    function manifestHash(bytes32 modelId, uint32 version) external view returns (bytes32) {
        return _manifestHashes[modelId][version];
    }

    /// @inheritdoc IModelRegistry
    function modelExists(bytes32 modelId) external view returns (bool) {
        return _models[modelId].latestVersion != 0;
    }
}
