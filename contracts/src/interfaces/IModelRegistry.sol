// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IModelRegistry
/// @notice Training manifests: a model id maps to versions, each a list of (dataset id, weight) over datasets
/// registered (and not withdrawn) in the ContributionRegistry. Inference revenue for a model is attributed
/// off-chain through its manifest. The first TRAINER to register a model id owns it; only that trainer adds
/// versions. Only a hash of each manifest is stored; the lists are in `ModelManifestRegistered`.
interface IModelRegistry {
    /// @notice Version `version` of `modelId`'s training manifest: `weights[i]` is the share of `datasetIds[i]`.
    event ModelManifestRegistered(
        bytes32 indexed modelId, uint32 indexed version, address indexed trainer, bytes32[] datasetIds, uint32[] weights
    );

    /// @notice Empty manifest, zero model id, zero weight, or dataset ids not strictly ascending (duplicates).
    error ModelRegistryInvalidManifest();
    /// @notice `datasetIds` and `weights` differ in length.
    error ModelRegistryLengthMismatch();
    /// @notice A dataset id is not a registered dataset, or it has been withdrawn.
    error ModelRegistryUnknownDataset(bytes32 datasetId);
    /// @notice The model id belongs to another trainer.
    error ModelRegistryNotModelTrainer(bytes32 modelId, address caller);

    /// @notice Register the next version of `modelId` (TRAINER_ROLE). `datasetIds` strictly ascending.
    function registerManifest(bytes32 modelId, bytes32[] calldata datasetIds, uint32[] calldata weights)
        external
        returns (uint32 version);

    /// @notice Latest version of `modelId` (0 if none).
    function latestVersion(bytes32 modelId) external view returns (uint32);

    /// @notice The trainer who owns `modelId` (zero if none).
    function trainerOf(bytes32 modelId) external view returns (address);

    /// @notice `keccak256(abi.encode(datasetIds, weights))` of a version (zero if none).
    function manifestHash(bytes32 modelId, uint32 version) external view returns (bytes32);

    /// @notice Whether `modelId` has at least one manifest.
    function modelExists(bytes32 modelId) external view returns (bool);
}
