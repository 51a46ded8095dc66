// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IContributionRegistry
/// @notice Registry of contributions to open AI: datasets (identified by content hash, one owner ever) and
/// compute jobs (identified by `keccak256(abi.encode(provider, jobId))`). Validators attest scores; owners
/// may withdraw a contribution from future epochs. Only owner, kind, withdrawn flag and registration time are
/// stored (one slot); everything else lives in the events, which the indexer mirrors.
/// @dev Relayed registration: the contributor signs EIP-712 typed data (domain name "Cairn ContributionRegistry",
/// version "1", chain id, this contract) binding the owner, a sequential per-owner nonce (`nonces(owner)`) and a
/// deadline. EOAs sign with ECDSA (low-s only), contract wallets via EIP-1271.
interface IContributionRegistry {
    /// @notice Kind of a contribution. `None` means "not registered".
    enum Kind {
        None,
        Dataset,
        Compute
    }

    /// @notice One dataset in a batch (and the fields of a single registration).
    struct DatasetInput {
        bytes32 contentHash;
        uint64 size;
        uint32 licenseId;
        bytes32 metadataHash;
        string uri;
    }

    /// @notice Datasets registered together, sharing one licence, one metadata document and one location:
    /// the cheap batch (one event for the whole batch, ~1k gas per item above the fresh storage slot).
    /// `uri` is where the batch is fetched (an IPFS directory, an object-store prefix, an archive manifest); an
    /// item is found there by its content hash. `metadataHash` commits to the batch's metadata document.
    struct DatasetBatch {
        bytes32[] contentHashes;
        uint64[] sizes;
        uint32 licenseId;
        bytes32 metadataHash;
        string uri;
    }

    /// @notice One compute job in a batch (and the fields of a single registration).
    struct ComputeInput {
        bytes32 jobId;
        uint64 workUnits;
        bytes32 modelId;
        bytes32 resultHash;
    }

    /// @notice What the contract stores per contribution (one slot).
    struct Contribution {
        address owner;
        Kind kind;
        bool withdrawn;
        uint64 registeredAt;
    }

    /// @notice A dataset was registered; its contribution id is `contentHash`. `licenseId` is an off-chain
    /// licence table index, `metadataHash` commits to off-chain metadata, `uri` says where to fetch the data.
    event DatasetRegistered(
        bytes32 indexed contentHash, address indexed owner, uint64 size, uint32 licenseId, bytes32 metadataHash, string uri
    );
    /// @notice `owner` registered the datasets `contentHashes` (sizes `sizes`, same order) in one batch sharing
    /// `licenseId`, `metadataHash` and `uri`; each content hash is a contribution id, as with `DatasetRegistered`.
    event DatasetBatchRegistered(
        address indexed owner, uint32 licenseId, bytes32 metadataHash, string uri, bytes32[] contentHashes, uint64[] sizes
    );
    /// @notice A compute job was registered; `contributionId = keccak256(abi.encode(provider, jobId))`.
    /// `workUnits` is the job's measured work (e.g. GPU-seconds), `resultHash` commits to its output.
    event ComputeRegistered(
        bytes32 indexed contributionId,
        address indexed provider,
        bytes32 indexed modelId,
        bytes32 jobId,
        uint64 workUnits,
        bytes32 resultHash
    );
    /// @notice `score` in 0..10000; a later attestation by the same validator replaces the earlier one.
    event Attested(bytes32 indexed contributionId, address indexed validator, uint16 score);
    /// @notice The owner withdrew the contribution from future epochs' rewards (the id stays taken).
    event ContributionWithdrawn(bytes32 indexed contributionId, address indexed owner);

    /// @notice The content hash (or compute contribution id) is already registered (possibly withdrawn).
    error ContributionRegistryAlreadyRegistered(bytes32 contributionId);
    /// @notice No contribution with this id.
    error ContributionRegistryUnknownContribution(bytes32 contributionId);
    /// @notice The caller does not own the contribution.
    error ContributionRegistryNotOwner(bytes32 contributionId, address caller);
    /// @notice The contribution has already been withdrawn.
    error ContributionRegistryAlreadyWithdrawn(bytes32 contributionId);
    /// @notice Score above 10000.
    error ContributionRegistryInvalidScore(uint16 score);
    /// @notice The signed deadline has passed.
    error ContributionRegistryExpiredSignature(uint256 deadline);
    /// @notice The signature is not the owner's over this typed data (wrong signer, nonce, chain or contract).
    error ContributionRegistryInvalidSignature(address owner);
    /// @notice Zero content hash, zero owner, or an empty batch.
    error ContributionRegistryInvalidInput();
    /// @notice Arrays of different lengths.
    error ContributionRegistryLengthMismatch();

    /// @notice Register a dataset owned by the caller.
    function registerDataset(
        bytes32 contentHash,
        uint64 size,
        uint32 licenseId,
        bytes32 metadataHash,
        string calldata uri
    ) external;

    /// @notice Register a dataset for `owner`, who signed `RegisterDataset` typed data (anyone may relay it).
    function registerDatasetFor(DatasetInput calldata dataset, address owner, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Register many datasets owned by the caller.
    function registerDatasets(DatasetInput[] calldata datasets) external;

    /// @notice Register many datasets for `owner` with one `RegisterDatasets` signature over the whole batch.
    function registerDatasetsFor(
        DatasetInput[] calldata datasets,
        address owner,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Register a batch of datasets owned by the caller, sharing licence, metadata and location.
    function registerDatasetBatch(DatasetBatch calldata batch) external;

    /// @notice Register a batch of datasets for `owner`, who signed `RegisterDatasetBatch` typed data.
    function registerDatasetBatchFor(DatasetBatch calldata batch, address owner, uint256 deadline, bytes calldata signature)
        external;

    /// @notice Register a compute contribution by the caller; returns its id `keccak256(abi.encode(caller, jobId))`.
    function registerCompute(bytes32 jobId, uint64 workUnits, bytes32 modelId, bytes32 resultHash)
        external
        returns (bytes32 contributionId);

    /// @notice Register a compute contribution for `provider`, who signed `RegisterCompute` typed data.
    function registerComputeFor(
        ComputeInput calldata job,
        address provider,
        uint256 deadline,
        bytes calldata signature
    ) external returns (bytes32 contributionId);

    /// @notice Register many compute contributions by the caller.
    function registerComputes(ComputeInput[] calldata jobs) external;

    /// @notice Register many compute contributions for `provider` with one `RegisterComputes` signature.
    function registerComputesFor(
        ComputeInput[] calldata jobs,
        address provider,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Record the caller's score for a contribution (VALIDATOR_ROLE). Nothing is stored; see `Attested`.
    function attest(bytes32 contributionId, uint16 score) external;

    /// @notice Many attestations in one call (VALIDATOR_ROLE).
    function attestBatch(bytes32[] calldata contributionIds, uint16[] calldata scores) external;

    /// @notice Withdraw the caller's contribution from future epochs (cannot be undone; the id stays taken).
    function withdraw(bytes32 contributionId) external;

    /// @notice Withdraw `owner`'s contribution, relayed with the owner's `Withdraw` signature (gasless owners).
    function withdrawFor(bytes32 contributionId, address owner, uint256 deadline, bytes calldata signature) external;

    /// @notice The stored record of a contribution (`kind == None` if unknown).
    function contributionOf(bytes32 contributionId) external view returns (Contribution memory);

    /// @notice Id of a compute contribution.
    function computeId(address provider, bytes32 jobId) external pure returns (bytes32);

    /// @notice The next nonce `owner` must sign for a relayed call.
    function nonces(address owner) external view returns (uint256);
}
